"""How the worker logs the failures of the infrastructure it retries."""

from __future__ import annotations

import logging

log = logging.getLogger("agents_run.worker")


def log_infra_error(what: str, error: BaseException) -> None:
    """One line per retry with the cause; the traceback at DEBUG (an outage repeats it)."""
    log.warning("%s (%s: %s)", what, type(error).__name__, " ".join(str(error).split()))
    log.debug("the traceback of: %s", what, exc_info=error)
