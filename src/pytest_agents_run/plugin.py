"""The pytest plugin: a fresh ``infra`` per test, a report of what a test left behind, and
``--repeat-deterministic=N`` that proves repeats of a ``deterministic`` test behave the same."""

from __future__ import annotations

import asyncio
import copy
import re
import warnings
from collections.abc import Coroutine, Generator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from agents_run import Infra, reset_infra, set_infra
from pytest_agents_run import hookspecs
from pytest_agents_run.determinism import (
    RECORD_PROPERTY,
    DeterminismChecker,
    RepeatRecord,
    as_json,
    nodeid_without_repeat,
    outcome_of,
    repeat_position,
)
from pytest_agents_run.leaks import InfraLeakWarning, find_leaks
from pytest_agents_run.recording import Trace, TraceEntry, recording_infra

MARKER = "deterministic"
# Closing the infra asks its adapters; a networked one that does not answer must not hang pytest.
TEARDOWN_TIMEOUT = 30.0


@dataclass(frozen=True)
class Settings:
    repeats: int
    strict_leaks: bool


_settings_key = pytest.StashKey[Settings]()
_trace_key = pytest.StashKey[list[TraceEntry]]()  # normalised, JSON
_phase_reports_key = pytest.StashKey[list[pytest.TestReport]]()


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("agents-run", "agents-run: fresh infra per test, proof of determinism")
    group.addoption(
        "--repeat-deterministic",
        dest="repeat_deterministic",
        metavar="N",
        default=None,
        help="run every test marked deterministic N times, each with fresh infra, and fail where "
        "the repeats differ in outcome or trace (N >= 1; 1 means no repeats). "
        "Default: the repeat_deterministic ini setting, else 1.",
    )
    group.addoption(
        "--agents-run-strict-leaks",
        dest="agents_run_strict_leaks",
        action="store_true",
        default=None,
        help="fail a passing test that leaves work in its infra (jobs, unpublished outbox rows, "
        "open subscriptions) instead of warning with InfraLeakWarning.",
    )
    parser.addini(
        "repeat_deterministic",
        "agents-run: how many times to run each deterministic test (>= 1; 1 means no repeats).",
        default="1",
    )
    parser.addini(
        "agents_run_strict_leaks",
        "agents-run: fail a passing test that leaves work in its infra instead of warning.",
        type="bool",
        default=False,
    )


def _repeat_count(config: pytest.Config) -> int:
    option = config.getoption("repeat_deterministic")
    if option is not None:
        source, raw = "--repeat-deterministic", option
    else:
        source, raw = "the repeat_deterministic ini setting", config.getini("repeat_deterministic")
    text = str(raw).strip()
    if not re.fullmatch(r"[0-9]+", text) or int(text) < 1:
        raise pytest.UsageError(
            f"{source} must be an int >= 1 (the number of runs of each deterministic test; "
            f"1 means no repeats), got {raw!r}"
        )
    return int(text)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}: this test must do the same on every repeat (agents-run): under "
        "--repeat-deterministic=N it runs N times, each with fresh infra, and fails where the "
        "repeats differ in outcome or in what they did through the infra. Takes no arguments.",
    )
    strict_option = config.getoption("agents_run_strict_leaks")
    settings = Settings(
        repeats=_repeat_count(config),
        strict_leaks=bool(
            config.getini("agents_run_strict_leaks") if strict_option is None else strict_option
        ),
    )
    if settings.repeats > 1 and not config.pluginmanager.has_plugin("repeat"):
        raise pytest.UsageError(
            "--repeat-deterministic needs the pytest-repeat plugin, which is not loaded "
            "(remove -p no:repeat)"
        )
    config.stash[_settings_key] = settings
    if not hasattr(config, "workerinput"):  # an xdist worker only records; the controller compares
        config.pluginmanager.register(DeterminismChecker(), "agents-run-determinism")


@pytest.hookimpl(trylast=True)
def pytest_agents_run_make_infra(request: pytest.FixtureRequest) -> Infra:
    return Infra.in_memory()


@pytest.hookimpl(tryfirst=True)  # before pytest-repeat reads the repeat marker (it runs trylast)
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    markers = list(metafunc.definition.iter_markers(MARKER))
    if not markers:
        return
    for marker in markers:
        if marker.args or marker.kwargs:
            arguments = ", ".join(
                [repr(arg) for arg in marker.args]
                + [f"{key}={value!r}" for key, value in marker.kwargs.items()]
            )
            raise pytest.Collector.CollectError(
                f"{metafunc.definition.nodeid}: @pytest.mark.{MARKER} takes no arguments, got "
                f"({arguments}); set the number of runs with --repeat-deterministic=N or the "
                "repeat_deterministic ini setting"
            )
    repeats = metafunc.config.stash[_settings_key].repeats
    if repeats > 1:
        metafunc.definition.add_marker(pytest.mark.repeat(repeats), append=False)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # A deterministic test gets fresh, traced infra even where it does not ask for it, set up
    # before its other fixtures. (Added here: generate_tests is too early, pytest prunes it.)
    for item in items:
        fixturenames = getattr(item, "fixturenames", None)
        if (
            fixturenames is not None
            and "infra" not in fixturenames
            and item.get_closest_marker(MARKER) is not None
        ):
            fixturenames.insert(0, "infra")


@pytest.fixture
def infra(request: pytest.FixtureRequest) -> Iterator[Infra]:
    """Fresh infra for this test: what ``get_infra()`` returns until the test ends.

    Made by the ``pytest_agents_run_make_infra`` hook (in-memory by default), with its ports
    recorded for the determinism check. After the test: a passing test that left work behind gets
    an ``InfraLeakWarning`` (an error under ``--agents-run-strict-leaks``), the infra is closed,
    and ``reset_infra()`` runs, also where the test or its setup failed.
    """
    item = request.node
    made = item.ihook.pytest_agents_run_make_infra(request=request)
    if not isinstance(made, Infra):
        raise TypeError(
            "pytest_agents_run_make_infra must return an agents_run.Infra, "
            f"got {type(made).__name__}"
        )
    trace = Trace()
    recorded = recording_infra(made, trace)
    set_infra(recorded)
    yield recorded
    check_leaks = all(report.passed for report in item.stash.get(_phase_reports_key, []))
    try:
        leaks = _run_in_a_fresh_loop(_close(recorded, check_leaks=check_leaks))
    finally:
        reset_infra()
    if item.get_closest_marker(MARKER) is not None:
        # Here rather than at report time: a normalise hook that raises fails this teardown.
        item.stash[_trace_key] = _normalized(item, trace.entries)
    if leaks:
        _report_leaks(item, leaks, strict=item.config.stash[_settings_key].strict_leaks)


async def _close(infra: Infra, *, check_leaks: bool) -> list[str]:
    leaks = await find_leaks(infra) if check_leaks else []
    await infra.aclose()  # after the check: closing the bus closes its subscriptions
    return leaks


def _run_in_a_fresh_loop(coroutine: Coroutine[Any, Any, list[str]]) -> list[str]:
    # pytest-asyncio and anyio have closed the test's own loop by now; a loop_factory keeps the
    # Runner from replacing the thread's current loop.
    with asyncio.Runner(loop_factory=asyncio.new_event_loop) as runner:
        try:
            return runner.run(asyncio.wait_for(coroutine, TEARDOWN_TIMEOUT))
        except TimeoutError:
            raise TimeoutError(
                f"agents-run: closing the test's infra took longer than {TEARDOWN_TIMEOUT:g}s; "
                "an adapter did not answer"
            ) from None


def _report_leaks(item: pytest.Item, leaks: list[str], *, strict: bool) -> None:
    message = f"{item.nodeid} left work in its infra: " + "; ".join(leaks)
    if strict:
        pytest.fail(f"{message} (an error under the strict leak check)", pytrace=False)
    warnings.warn_explicit(
        InfraLeakWarning(message),
        InfraLeakWarning,
        filename=str(item.path),
        lineno=(item.location[1] or 0) + 1,
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    reports = item.stash.setdefault(_phase_reports_key, [])
    reports.append(report)
    if report.when == "teardown":
        del item.stash[_phase_reports_key]
        # No trace where the infra fixture was not ours (a project's own) or never set up.
        trace = item.stash.get(_trace_key, [])
        if _trace_key in item.stash:
            del item.stash[_trace_key]
        if item.get_closest_marker(MARKER) is not None:
            repeat, of = repeat_position(item, item.config.stash[_settings_key].repeats)
            record = RepeatRecord(
                test=nodeid_without_repeat(item.nodeid, repeat, of),
                repeat=repeat,
                of=of,
                outcome=outcome_of(reports),
                trace=trace,
            )
            report.user_properties.append((RECORD_PROPERTY, record.to_json()))
    return report


def _normalized(item: pytest.Item, entries: list[TraceEntry]) -> list[TraceEntry]:
    copies = copy.deepcopy(entries)
    for entry in copies:
        item.ihook.pytest_agents_run_normalize_trace_entry(entry=entry, item=item)
    return as_json([entry for entry in copies if entry])
