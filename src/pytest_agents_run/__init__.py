"""pytest-agents-run: the pytest plugin of agents-run (loaded through the ``pytest11`` entry
point). See docs/testing.md."""

from pytest_agents_run.guardrails import InfraNotRequested
from pytest_agents_run.leaks import InfraLeakWarning
from pytest_agents_run.recording import TraceEntry

__all__ = ["InfraLeakWarning", "InfraNotRequested", "TraceEntry"]
