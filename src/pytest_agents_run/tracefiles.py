"""Traces as files: one entry a line, keys sorted, so that a diff or a review shows what changed.

Golden traces (``golden_trace``) and the traces ``--agents-run-trace-dir`` writes for every
repeat use the same form.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pytest_agents_run.recording import TraceEntry


GOLDEN_SUFFIX = ".traces.json"


def entry_line(entry: TraceEntry) -> str:
    return json.dumps(entry, sort_keys=True, ensure_ascii=False)


def dump_trace(entries: list[TraceEntry], indent: str = "") -> str:
    """A JSON array, one entry a line."""
    if not entries:
        return "[]"
    inner = ",\n".join(f"{indent}  {entry_line(entry)}" for entry in entries)
    return f"[\n{inner}\n{indent}]"


def dump_traces(traces: dict[str, list[TraceEntry]]) -> str:
    """A JSON object of traces by test, tests sorted, one entry a line."""
    if not traces:
        return "{}\n"
    sections = ",\n".join(
        f"  {json.dumps(test, ensure_ascii=False)}: {dump_trace(traces[test], '  ')}"
        for test in sorted(traces)
    )
    return "{\n" + sections + "\n}\n"


def golden_file(module: Path) -> Path:
    """``tests/test_runs.py`` -> ``tests/test_runs.traces.json``, beside the module."""
    return module.with_name(module.stem + GOLDEN_SUFFIX)


def repeat_trace_file(directory: Path, test: str, repeat: int, of: int) -> Path:
    """Where ``--agents-run-trace-dir`` puts one repeat's trace: named after the test."""
    name = re.sub(r"[^\w.-]+", "_", test).strip("_")[:180]
    return directory / f"{name}.repeat-{repeat}-of-{of}.json"
