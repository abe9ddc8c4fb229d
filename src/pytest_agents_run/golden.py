"""Golden traces: what a test's run did, kept in a reviewable file beside the test module, so
that a change in behaviour across commits (a new step, another payload, one effect more) fails
the test with the divergence report until the file is updated and the change reviewed.

A test that requests ``golden_trace`` has its trace (normalised as for repeats) compared with
its section of ``<module>.traces.json`` after it passed. With ``--agents-run-update-traces`` the
sections are (re)written instead: the traces travel to the controller in the reports (as repeat
records do), and only the controller writes, once, at the end of the session, so xdist workers
never write one file at once.
"""

from __future__ import annotations

import json
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pytest

from pytest_agents_run.tracefiles import dump_traces, golden_file
from pytest_agents_run.wording import counted

if TYPE_CHECKING:
    from agents_run import Infra
    from pytest_agents_run.recording import TraceEntry

FIXTURE = "golden_trace"
GOLDEN_PROPERTY = "agents_run_golden"
STALE_OUTPUT = "agents_run_stale_golden"  # an xdist worker's finding, in its workeroutput
UPDATE_OPTION = "--agents-run-update-traces"


@dataclass(frozen=True)
class GoldenTrace:
    """What ``golden_trace`` gives a test: where its golden trace is kept."""

    path: Path  # the file beside the test module
    test: str  # the test's section in it: its node id after the module


_golden_key = pytest.StashKey[GoldenTrace]()


def add_options(group: pytest.OptionGroup) -> None:
    group.addoption(
        UPDATE_OPTION,
        dest="agents_run_update_traces",
        action="store_true",
        default=False,
        help="(re)write the golden traces of the tests that request golden_trace (a "
        "<module>.traces.json beside each test module) instead of comparing with them, and "
        "remove the sections no test uses any more.",
    )
    group.addoption(
        "--agents-run-trace-dir",
        dest="agents_run_trace_dir",
        metavar="DIR",
        default=None,
        help="write every repeat's full trace (normalised, one entry a line) to DIR, for "
        "offline diffing.",
    )


def trace_dir(config: pytest.Config) -> Path | None:
    given = config.getoption("agents_run_trace_dir")
    return None if given is None else Path(config.invocation_params.dir, given).resolve()


def section_of(test: str) -> str:
    """``tests/t.py::TestA::test_b[x]`` -> ``TestA::test_b[x]``."""
    return test.split("::", 1)[1] if "::" in test else test


@pytest.fixture
def golden_trace(request: pytest.FixtureRequest, infra: Infra) -> GoldenTrace:
    """Compare this test's trace, once it passed, with the one kept beside its module.

    ``pytest --agents-run-update-traces`` records it (review the file, commit it); later runs fail
    with the divergence report where the run did something else.
    """
    golden = GoldenTrace(golden_file(request.node.path), section_of(request.node.nodeid))
    request.node.stash[_golden_key] = golden
    return golden


def uses_golden(item: pytest.Item) -> bool:
    return _golden_key in item.stash


def after_test(
    item: pytest.Item, test: str, trace: list[TraceEntry], outcome: str, report: pytest.TestReport
) -> None:
    """At the test's teardown report: compare its trace with the golden one (a failure on
    ``report`` where they differ), or under --agents-run-update-traces send it to the writer.
    ``test`` is the node id without a repeat's own id."""
    golden = item.stash.get(_golden_key, None)
    if golden is None or outcome != "passed":  # a failing test's own failure says enough
        return
    section = section_of(test)
    if item.config.getoption("agents_run_update_traces"):
        record = {"file": str(golden.path), "test": section, "trace": trace}
        report.user_properties.append((GOLDEN_PROPERTY, record))
        return
    message = _compare(item.config, golden.path, test, trace)
    if message is not None:
        report.outcome = "failed"
        report.longrepr = message


def _compare(config: pytest.Config, path: Path, test: str, trace: list[TraceEntry]) -> str | None:
    # Imported here: it imports agents_run, which pytest's start-up should not.
    from pytest_agents_run.divergence import rerun_command, trace_divergence  # noqa: PLC0415

    shown = _shown(config, path)
    update = f"update: pytest {test} {UPDATE_OPTION} (then review the file's diff and commit it)"
    try:
        stored = load_golden(path)
    except ValueError as error:
        return f"golden trace unreadable: {error}\n{update}"
    section = section_of(test)
    if section not in stored:
        return f"golden trace missing: {shown} has no trace for {section}\n{update}"
    lines = trace_divergence(stored[section], trace, "golden", "this run")
    if not lines:
        return None
    header = f"golden trace changed: {test} did not do what {shown} [{section}] recorded"
    return "\n".join([header, *lines, update, rerun_command(config, test)])


def load_golden(path: Path) -> dict[str, list[TraceEntry]]:
    """A golden file's traces by test (empty where there is no file); ValueError where it is not
    one."""
    if not path.is_file():
        return {}
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise ValueError(
            f"{path} is not JSON ({error}); fix it, or delete it and record "
            f"again with {UPDATE_OPTION}"
        ) from None
    if not isinstance(stored, dict) or not all(
        isinstance(trace, list) for trace in stored.values()
    ):
        raise ValueError(
            f"{path} is not an object of traces by test; record it again with {UPDATE_OPTION}"
        )
    return cast("dict[str, list[TraceEntry]]", stored)


def _shown(config: pytest.Config, path: Path) -> str:
    try:
        return path.relative_to(config.rootpath).as_posix()
    except ValueError:
        return str(path)


@dataclass(eq=False)  # a plugin must stay hashable
class GoldenTraces:
    """Finds the sections no test uses any more (where tests are collected), and on the
    controller writes the files with what --agents-run-update-traces recorded (GoldenRecorder)."""

    config: pytest.Config
    test_of: Any  # Callable[[pytest.Item], str]: the node id without a repeat's own id
    stale: dict[str, set[str]] = field(default_factory=dict)
    recorded: dict[str, dict[str, list[TraceEntry]]] = field(default_factory=dict)
    written: list[str] = field(default_factory=list)

    @property
    def _controller(self) -> bool:
        return not hasattr(self.config, "workerinput")

    @pytest.hookimpl(tryfirst=True)  # before -k and -m deselect: a deselected test still uses it
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        invocation = Path(self.config.invocation_params.dir)
        # Where only some tests of a module were named, the others' sections are not stale.
        partial = {
            (invocation / arg.split("::", 1)[0]).resolve()
            for arg in self.config.args
            if "::" in arg
        }
        used: dict[Path, set[str]] = {}
        for item in items:
            sections = used.setdefault(item.path, set())
            if FIXTURE in getattr(item, "fixturenames", ()):
                sections.add(section_of(self.test_of(item)))
        for module, sections in used.items():
            if module.resolve() in partial:
                continue
            path = golden_file(module)
            try:
                unused = set(load_golden(path)) - sections
            except ValueError:
                continue  # reported by the tests that use it
            if unused:
                self.stale[str(path)] = unused

    def merge_stale(self, found: dict[str, list[str]]) -> None:
        for path, sections in found.items():
            self.stale.setdefault(path, set()).update(sections)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if not self._controller:
            workeroutput: dict[str, Any] = getattr(self.config, "workeroutput", {})
            workeroutput[STALE_OUTPUT] = {path: sorted(s) for path, s in self.stale.items()}
            return
        if not self.config.getoption("agents_run_update_traces"):
            return
        for name in sorted(set(self.recorded) | set(self.stale)):
            path = Path(name)
            stale = self.stale.get(name, set())
            traces = {k: v for k, v in load_golden(path).items() if k not in stale}
            traces.update(self.recorded.get(name, {}))
            before = path.read_text(encoding="utf-8") if path.is_file() else None
            if not traces:
                if before is not None:
                    path.unlink()
                    self.written.append(f"removed {_shown(self.config, path)}")
                continue
            after = dump_traces(traces)
            if after != before:
                path.write_text(after, encoding="utf-8")
                self.written.append(f"wrote {_shown(self.config, path)}")

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self._controller:
            return
        update = self.config.getoption("agents_run_update_traces")
        for line in self.written:
            terminalreporter.write_line(f"agents-run golden traces: {line}")
        if self.stale and not update:
            count = sum(len(sections) for sections in self.stale.values())
            terminalreporter.write_line(
                f"agents-run: {counted(count, 'golden trace')} no test uses any more "
                f"({UPDATE_OPTION} removes them):",
                yellow=True,
            )
            for path in sorted(self.stale):
                shown = _shown(self.config, Path(path))
                terminalreporter.write_line(f"  {shown}: {', '.join(sorted(self.stale[path]))}")


@dataclass(eq=False)
class GoldenRecorder:
    """On the controller under --agents-run-update-traces: takes the traces the reports carry
    (registered only then, so that no other run pays for a look at every report)."""

    golden: GoldenTraces

    @pytest.hookimpl(wrapper=True)  # around: the record is taken out before others see it
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> Generator[None, Any, Any]:
        if report.when == "teardown":
            for position, (name, value) in enumerate(report.user_properties):
                if name == GOLDEN_PROPERTY:
                    del report.user_properties[position]
                    record = cast(dict[str, Any], value)
                    sections = self.golden.recorded.setdefault(str(record["file"]), {})
                    sections.setdefault(str(record["test"]), record["trace"])
                    break
        return (yield)


@dataclass(eq=False)
class XdistStaleGolden:
    """On the xdist controller: the stale sections each worker found (registered only with
    xdist, whose hook this is)."""

    golden: GoldenTraces

    def pytest_testnodedown(self, node: Any, error: object) -> None:
        found = getattr(node, "workeroutput", {}).get(STALE_OUTPUT)
        if found:
            self.golden.merge_stale(found)
