"""Entry points: the ``agents-run`` command, its demo, terminal formatting and signal handling.

The only code that calls the composition root (``agents_run.config``); everything below them
reaches infrastructure through ``get_infra()``.
"""
