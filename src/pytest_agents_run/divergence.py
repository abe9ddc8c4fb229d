"""How one trace differs from another, in short lines that point at the difference.

Used where repeats of a deterministic test disagree and where a test's trace no longer matches
its golden trace: the first differing entry named by its operation, run, sequence and agent, the
path of the first differing value inside it, long strings shown as a window around the first
differing character, and a trace that holds the same entries in another order called a
reordering, with the first pair that swapped. The value formatting (paths, windows, bounds) is
``agents_run.domain.differences``, shared with the reports of a replay.
"""

from __future__ import annotations

import json
import shlex
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from agents_run.domain.differences import (
    WIDTH,
    bounded,
    first_difference,
    first_differing_character,
    long_strings,
    short,
    shown,
)

if TYPE_CHECKING:
    from pytest_agents_run.recording import TraceEntry


def trace_divergence(
    expected: list[TraceEntry], actual: list[TraceEntry], expected_name: str, actual_name: str
) -> list[str]:
    """Report lines (indented by two spaces) on how ``actual`` differs; empty where it does not."""
    if expected == actual:
        return []
    agents = _agents_by_run(expected + actual)
    first = next(
        index
        for index in range(max(len(expected), len(actual)))
        if index >= len(expected) or index >= len(actual) or expected[index] != actual[index]
    )
    if len(expected) == len(actual) and _same_entries(expected, actual):
        return _reordering(expected, actual, first, expected_name, actual_name, agents=agents)
    agreed = f"the first {first} agree" if first else "none before it agree"
    counts = f"{agreed}; {expected_name} recorded {len(expected)}, {actual_name} {len(actual)}"
    ours = expected[first] if first < len(expected) else None
    theirs = actual[first] if first < len(actual) else None
    if ours is not None and theirs is not None and ours.get("op") == theirs.get("op"):
        path, left, right = first_difference(ours, theirs)
        path = path or "(the entry)"
        where = f"entry {first + 1} ({_describe(ours, agents)}): {path}"
        inline = f"  {where}: {short(left)} != {short(right)}"
        if len(inline) <= WIDTH and not long_strings(left, right):
            lines = [inline[2:], f"  ({expected_name} != {actual_name}; {counts})"]
        else:  # one value a line, long strings as a window around the first difference
            at = first_differing_character(left, right)
            named = f", from character {at + 1}" if at is not None else ""
            room = WIDTH - 6 - max(len(expected_name), len(actual_name))
            lines = [
                f"{where}{named}:",
                f"  {expected_name}: {shown(left, at, room)}",
                f"  {actual_name}: {shown(right, at, room)}",
                f"  ({counts})",
            ]
    elif theirs is not None and actual[first + 1 :] == expected[first:]:
        lines = [
            f"entry {first + 1}: {actual_name} has one entry more here:",
            f"  {_entry_json(theirs)}",
            f"  ({counts})",
        ]
    elif ours is not None and expected[first + 1 :] == actual[first:]:
        lines = [
            f"entry {first + 1}: {actual_name} lacks this entry of {expected_name}:",
            f"  {_entry_json(ours)}",
            f"  ({counts})",
        ]
    else:
        lines = [
            f"entry {first + 1} differs:",
            f"  {expected_name}: {_entry_json(ours)}",
            f"  {actual_name}: {_entry_json(theirs)}",
            f"  ({counts})",
        ]
    return [bounded("  " + line) for line in lines]


def _same_entries(expected: list[TraceEntry], actual: list[TraceEntry]) -> bool:
    def key(entry: TraceEntry) -> str:
        return json.dumps(entry, sort_keys=True)

    return Counter(map(key, expected)) == Counter(map(key, actual))


def _reordering(
    expected: list[TraceEntry],
    actual: list[TraceEntry],
    first: int,
    expected_name: str,
    actual_name: str,
    *,
    agents: dict[str, str],
) -> list[str]:
    ours, theirs = expected[first], actual[first]
    # Where the entry each side has at ``first`` sits in the other one.
    later_ours = first + 1 + expected[first + 1 :].index(theirs)
    later_theirs = first + 1 + actual[first + 1 :].index(ours)
    pad = " " * (len(expected_name) + 2)
    lines = [
        f"reordered: both hold the same {len(expected)} entries, in another order (tasks or "
        "workers",
        "interleaving differently?); the first pair that swapped:",
        f"  {expected_name}: entry {first + 1} {_describe(ours, agents)}",
        f"  {pad}then entry {later_ours + 1} {_describe(theirs, agents)}",
        f"  {actual_name}: entry {first + 1} {_describe(theirs, agents)}",
        f"  {' ' * (len(actual_name) + 2)}then entry {later_theirs + 1} {_describe(ours, agents)}",
    ]
    return [bounded("  " + line) for line in lines]


def _agents_by_run(entries: list[TraceEntry]) -> dict[str, str]:
    return {
        str(entry["run_id"]): str(entry["agent"])
        for entry in entries
        if entry.get("op") == "create_run" and "run_id" in entry and "agent" in entry
    }


def _describe(entry: TraceEntry, agents: dict[str, str]) -> str:
    """``append_event run-000001 seq 2, agent greeter``."""
    words = [str(entry.get("op", "?"))]
    if "run_id" in entry:
        words.append(str(entry["run_id"]))
    if "seq" in entry:
        words.append(f"seq {entry['seq']}")
    described = " ".join(words)
    agent = agents.get(str(entry.get("run_id")))
    return f"{described}, agent {agent}" if agent else described


def _entry_json(entry: TraceEntry | None) -> str:
    if entry is None:
        return "(no entry: the trace ended)"
    return json.dumps(entry, sort_keys=True, ensure_ascii=False)


def rerun_command(config: pytest.Config, nodeid: str, *, repeats: int = 1) -> str:
    """``rerun: pytest 'tests/t.py::test' ...``: that test alone, as this run ran it."""
    words = ["pytest", nodeid]
    if repeats > 1:
        words.append(f"--repeat-deterministic={repeats}")
    if config.getoption("agents_run_services", None):
        words.append("--agents-run-services")
    if config.pluginmanager.has_plugin("randomly"):  # its seed decides the order and `random`
        seed = config.getoption("randomly_seed", None)
        if isinstance(seed, int):
            words.append(f"--randomly-seed={seed}")
    command = " ".join(shlex.quote(word) for word in words)
    if Path(config.invocation_params.dir) != config.rootpath:
        command = f"cd {shlex.quote(str(config.rootpath))} && {command}"
    return f"rerun: {command}"
