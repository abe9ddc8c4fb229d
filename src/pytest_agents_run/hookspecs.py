"""Hooks a project implements in its ``conftest.py`` (added with ``pytest_addhooks``).

Both are called through the test item's ``ihook``, so a conftest applies to the tests under its
folder only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from agents_run import Infra
    from pytest_agents_run.recording import TraceEntry


@pytest.hookspec(firstresult=True)
def pytest_agents_run_make_infra(request: pytest.FixtureRequest) -> Infra | None:
    """Make the fresh ``Infra`` for one test (the ``infra`` fixture's ``request``).

    The first implementation that returns an ``Infra`` wins; the plugin's own, tried last,
    returns ``Infra.in_memory()``, or under ``--agents-run-services`` real infra in a fresh
    namespace (removed by a finalizer of its own). Production ids and time (``RandomIds``,
    ``SystemClock``: what ``load_infra_from_config`` and a hand-built ``Infra`` get) are replaced
    by ``SequentialIds`` and ``ManualClock``; any others are kept, and all are kept where the
    hook returns ``pytest_agents_run.keep_ids_and_clock(infra)``. The plugin closes what it gets
    (``Infra.aclose``) after the test; anything else to clean up (a schema, a key prefix) goes
    in ``request.addfinalizer``, which runs after that.
    """


@pytest.hookspec
def pytest_agents_run_normalize_trace_entry(entry: TraceEntry, item: pytest.Item) -> None:
    """Mask what is volatile in one trace entry of ``item``, in place, before repeats compare.

    Every implementation runs. Replace a volatile value (``entry["data"]["token"] = "<token>"``),
    or ``entry.clear()`` to drop the entry from the trace altogether.
    """
