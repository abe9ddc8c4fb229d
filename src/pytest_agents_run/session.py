"""What the plugin's modules share: the session's settings, the stash keys of a test's state, and
the names of the markers. Cheap to import: pytest's start-up pays for it (see plugin.py)."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from agents_run.config import InfraConfig
    from pytest_agents_run.loops import SpareLoop

MARKER = "deterministic"
MEMORY_ONLY_MARKER = "agents_run_memory_only"
NAMESPACE_PROPERTY = "agents_run_namespace"
REQUIRE_INFRA_INI = "agents_run_require_infra"


@dataclass(frozen=True)
class Settings:
    repeats: int
    strict_leaks: bool
    services: InfraConfig | None  # services mode: real infra as configured; None: in memory


settings_key = pytest.StashKey[Settings]()
# The test's trace, normalised, as JSON text: compared as text, parsed only where needed.
trace_key = pytest.StashKey[str]()
phase_reports_key = pytest.StashKey[list[pytest.TestReport]]()
# Made by the first test that needs it (loops.py imports asyncio).
spare_loop_key: pytest.StashKey[SpareLoop] = pytest.StashKey()


def fresh_namespace(config: pytest.Config) -> str:
    """``t_<xdist worker or main>_<12 hex>``: a PostgreSQL schema and a Redis key prefix that no
    other test, worker or user of the same servers has."""
    workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
    worker = str(workerinput["workerid"]) if workerinput else "main"
    worker = re.sub(r"[^a-z0-9]", "_", worker.lower())[:24]
    return f"t_{worker}_{uuid.uuid4().hex[:12]}"
