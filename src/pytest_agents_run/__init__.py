"""pytest-agents-run: the pytest plugin of agents-run (loaded through the ``pytest11`` entry
point). See docs/testing.md."""

from pytest_agents_run.deterministic_infra import keep_ids_and_clock
from pytest_agents_run.guardrails import InfraNotRequested
from pytest_agents_run.histories import saved_histories
from pytest_agents_run.leaks import InfraLeakWarning
from pytest_agents_run.recording import TraceEntry

__all__ = [
    "InfraLeakWarning",
    "InfraNotRequested",
    "TraceEntry",
    "keep_ids_and_clock",
    "saved_histories",
]
