"""Proof of determinism: each repeat's outcome and trace, compared where the reports arrive.

A worker (or the only process) attaches one record per repeat to the repeat's teardown report;
the records ride in ``report.user_properties``, which pytest-xdist carries to the controller, so
repeats that ran on different workers are compared all the same.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pytest

from pytest_agents_run.tracefiles import repeat_trace_file
from pytest_agents_run.wording import counted

if TYPE_CHECKING:
    from pytest_agents_run.recording import TraceEntry

RECORD_PROPERTY = "agents_run_determinism"
# pytest-repeat's parametrised fixture; its value is the 0-based repeat index.
_REPEAT_PARAM = "__pytest_repeat_step_number"


@dataclass(frozen=True)
class RepeatRecord:
    """What one repeat of a deterministic test did: JSON only, so it crosses to the controller."""

    test: str  # the node id without the repeat's own id, shared by all repeats
    repeat: int  # 1-based
    of: int
    outcome: str
    # The normalised trace as JSON text (``trace_json``): repeats that did the same compare as
    # equal strings, and the list is parsed only where they differ.
    trace_text: str

    @property
    def trace(self) -> list[TraceEntry]:
        parsed: list[TraceEntry] = json.loads(self.trace_text)
        return parsed

    def to_json(self) -> dict[str, Any]:
        return {
            "test": self.test,
            "repeat": self.repeat,
            "of": self.of,
            "outcome": self.outcome,
            "trace_text": self.trace_text,
        }

    @classmethod
    def from_json(cls, payload: dict[str, Any]) -> RepeatRecord:
        return cls(**payload)


def repeat_position(item: pytest.Item, repeat_deterministic: int) -> tuple[int, int]:
    """(1-based repeat, repeats) from pytest-repeat's parametrisation; (1, 1) when not repeated.

    Under ``--repeat-deterministic=N`` (N > 1) the plugin's own repeat marker set the count; with
    N = 1 a test can still be repeated by its own ``repeat`` marker or pytest-repeat's ``--count``.
    """
    callspec = getattr(item, "callspec", None)
    if callspec is None or _REPEAT_PARAM not in callspec.params:
        return 1, 1
    if repeat_deterministic > 1:
        count = repeat_deterministic
    else:
        marker = item.get_closest_marker("repeat")
        count = int(marker.args[0]) if marker else int(item.config.getoption("count", 1))
    return int(callspec.params[_REPEAT_PARAM]) + 1, count


def nodeid_without_repeat(nodeid: str, repeat: int, of: int) -> str:
    """``t.py::test[a-2-3]`` -> ``t.py::test[a]``; also with xdist's ``@group`` suffix."""
    if of == 1:
        return nodeid
    tag = f"{repeat}-{of}]"
    end = nodeid.rfind(tag)
    if end < 1:
        return nodeid
    before = nodeid[end - 1]
    if before == "[":
        return nodeid[: end - 1] + nodeid[end + len(tag) :]
    if before == "-":
        return nodeid[: end - 1] + "]" + nodeid[end + len(tag) :]
    return nodeid


def outcome_of(reports: Sequence[pytest.TestReport]) -> str:
    """'passed', or how the first phase that did not pass ended: 'failed in call', 'skipped'."""
    for report in reports:
        if report.failed:
            return f"failed in {report.when}"
        if report.skipped:
            return "xfailed" if hasattr(report, "wasxfail") else "skipped"
    return "passed"


def trace_json(entries: list[TraceEntry]) -> str:
    """The trace as JSON text, so that it compares the same in one process and across xdist
    workers (and crosses to the controller as one string)."""
    try:
        return json.dumps(entries, ensure_ascii=False)
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"agents-run: a trace entry is not JSON ({error}); a "
            "pytest_agents_run_normalize_trace_entry implementation must keep entries JSON"
        ) from None


def divergence(reference: RepeatRecord, other: RepeatRecord) -> str | None:
    """A report of how ``other`` differs from ``reference``, or None where they agree."""
    if other.outcome == reference.outcome and other.trace_text == reference.trace_text:
        return None  # the common case; texts that differ may still hold equal traces (1, 1.0)
    # Imported where a report may be made: it imports agents_run, which start-up should not.
    from pytest_agents_run.divergence import trace_divergence  # noqa: PLC0415

    lines = []
    if other.outcome != reference.outcome:
        lines.append(
            f"  outcome: repeat {reference.repeat} {reference.outcome}, "
            f"repeat {other.repeat} {other.outcome}"
        )
    lines += trace_divergence(
        reference.trace, other.trace, f"repeat {reference.repeat}", f"repeat {other.repeat}"
    )
    if not lines:
        return None
    header = (
        f"non-deterministic: repeat {other.repeat} of {other.of} differs from repeat "
        f"{reference.repeat} of {reference.test}"
    )
    return "\n".join([header, *lines])


@dataclass
class _Reference:
    record: RepeatRecord
    still_to_come: int


@dataclass(eq=False)  # a plugin must stay hashable
class DeterminismChecker:
    """Compares each repeat with the first repeat of the same test to arrive, on the controller.

    The first to arrive is the reference, so a divergence is reported on the report of the repeat
    that differs, whichever worker ran it and in whatever order the repeats finished.
    """

    config: pytest.Config
    trace_dir: Path | None = None
    tests: int = 0
    runs: int = 0
    divergences: int = 0
    # Kept only until the test's last repeat arrives.
    _references: dict[str, _Reference] = field(default_factory=dict)

    # A wrapper, so the report is marked failed before pytest counts failures for the exit code.
    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> Any:
        if report.when == "teardown":
            record = _pop_record(report)
            if record is not None:
                self._check(report, record)
        return (yield)

    def _check(self, report: pytest.TestReport, record: RepeatRecord) -> None:
        self.runs += 1
        reference = self._references.get(record.test)
        if reference is None:
            self.tests += 1
            if record.of > 1:
                self._references[record.test] = _Reference(record, still_to_come=record.of - 1)
            return
        reference.still_to_come -= 1
        if reference.still_to_come == 0:
            del self._references[record.test]
        message = divergence(reference.record, record)
        if message is None:
            return
        from pytest_agents_run.divergence import rerun_command  # noqa: PLC0415 - as above

        footer = [rerun_command(self.config, record.test, repeats=record.of)]
        if self.trace_dir is not None:
            files = [
                repeat_trace_file(self.trace_dir, record.test, kept.repeat, kept.of)
                for kept in (reference.record, record)
            ]
            footer.append("traces: " + " ".join(str(file) for file in files))
        message = "\n".join([message, *footer])
        self.divergences += 1
        if report.failed:  # teardown failed already: keep its error, add ours beside it
            report.sections.append(("agents-run determinism", message))
        else:
            report.outcome = "failed"
            report.longrepr = message

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self.tests:
            return
        tests, runs, diverged = self.tests, self.runs, self.divergences
        terminalreporter.write_line(
            f"agents-run: {counted(tests, 'deterministic test')}, {counted(runs, 'run')}, "
            f"{counted(diverged, 'divergence')}",
            red=diverged > 0,
        )


def _pop_record(report: pytest.TestReport) -> RepeatRecord | None:
    """Take our record out of the report, so junitxml and others do not print it."""
    for position, (name, value) in enumerate(report.user_properties):
        if name == RECORD_PROPERTY:
            del report.user_properties[position]
            return RepeatRecord.from_json(cast(dict[str, Any], value))
    return None
