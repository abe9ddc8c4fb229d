"""pytest-agents-run: the pytest plugin of agents-run (loaded through the ``pytest11`` entry
point). See docs/testing.md.

The public names are imported on first use: pytest imports this package at every start-up,
and they bring in all of agents_run.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytest_agents_run.crashes import (
        Crash,
        CrashInjection,
        CrashInjectionError,
        CrashPointNotReached,
        WorkerCrashed,
        count_crash_points,
        crash_at,
    )
    from pytest_agents_run.deterministic_infra import keep_ids_and_clock
    from pytest_agents_run.histories import saved_histories
    from pytest_agents_run.leaks import InfraLeakWarning
    from pytest_agents_run.recording import TraceEntry
    from pytest_agents_run.require_infra import InfraNotRequested

__all__ = [
    "Crash",
    "CrashInjection",
    "CrashInjectionError",
    "CrashPointNotReached",
    "InfraLeakWarning",
    "InfraNotRequested",
    "TraceEntry",
    "WorkerCrashed",
    "count_crash_points",
    "crash_at",
    "keep_ids_and_clock",
    "saved_histories",
]

_HOMES = {
    **dict.fromkeys(
        (
            "Crash",
            "CrashInjection",
            "CrashInjectionError",
            "CrashPointNotReached",
            "WorkerCrashed",
            "count_crash_points",
            "crash_at",
        ),
        "pytest_agents_run.crashes",
    ),
    "InfraLeakWarning": "pytest_agents_run.leaks",
    "InfraNotRequested": "pytest_agents_run.require_infra",
    "TraceEntry": "pytest_agents_run.recording",
    "keep_ids_and_clock": "pytest_agents_run.deterministic_infra",
    "saved_histories": "pytest_agents_run.histories",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value
