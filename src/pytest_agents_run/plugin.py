"""The pytest plugin: a fresh ``infra`` per test, a report of what a test left behind, and
``--repeat-deterministic=N`` that proves repeats of a ``deterministic`` test behave the same."""

from __future__ import annotations

import asyncio
import copy
import os
import re
import uuid
import warnings
from collections.abc import Coroutine, Generator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from agents_run import Infra, reset_infra, restoring_agents, set_infra
from agents_run.config import (
    BUS_URL,
    QUEUE_URL,
    STORE_URL,
    InfraConfig,
    build_infra,
    create_namespace,
    isolated,
    read_config,
    remove_namespace,
)
from agents_run.errors import InfraConfigError
from pytest_agents_run import golden, guardrails, hookspecs
from pytest_agents_run.determinism import (
    RECORD_PROPERTY,
    DeterminismChecker,
    RepeatRecord,
    as_json,
    nodeid_without_repeat,
    outcome_of,
    repeat_position,
)
from pytest_agents_run.deterministic_infra import with_test_ids_and_clock
from pytest_agents_run.golden import golden_trace  # noqa: F401 - a fixture of the plugin
from pytest_agents_run.leaks import InfraLeakWarning, find_leaks
from pytest_agents_run.loops import LoopBoundCleanup, SpareLoop
from pytest_agents_run.recording import Trace, TraceEntry, recording_infra
from pytest_agents_run.tracefiles import dump_trace, repeat_trace_file

MARKER = "deterministic"
MEMORY_ONLY_MARKER = "agents_run_memory_only"
NAMESPACE_PROPERTY = "agents_run_namespace"
# Closing the infra asks its adapters; a networked one that does not answer must not hang pytest.
TEARDOWN_TIMEOUT = 30.0


@dataclass(frozen=True)
class Settings:
    repeats: int
    strict_leaks: bool
    services: InfraConfig | None  # services mode: real infra as configured; None: in memory


_settings_key = pytest.StashKey[Settings]()
_trace_key = pytest.StashKey[list[TraceEntry]]()  # normalised, JSON
_phase_reports_key = pytest.StashKey[list[pytest.TestReport]]()
_spare_loop_key = pytest.StashKey[SpareLoop]()


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
    group.addoption(
        "--agents-run-services",
        dest="agents_run_services",
        action="store_true",
        default=None,
        help=f"give each test real infra as {BUS_URL}, {QUEUE_URL} and {STORE_URL} configure it, "
        "in a fresh namespace (Redis key prefix, PostgreSQL schema, SQLite file) removed after "
        f"the test; tests marked {MEMORY_ONLY_MARKER} are skipped.",
    )
    guardrails.add_options(parser, group)
    golden.add_options(group)
    parser.addini(
        "agents_run_services",
        "agents-run: services mode (see --agents-run-services).",
        type="bool",
        default=False,
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
    config.addinivalue_line(
        "markers",
        f"{MEMORY_ONLY_MARKER}(reason=...): this test needs the in-memory adapters (agents-run): "
        "skipped in services mode (--agents-run-services), with the reason where given.",
    )
    strict_option = config.getoption("agents_run_strict_leaks")
    services_option = config.getoption("agents_run_services")
    services = config.getini("agents_run_services") if services_option is None else services_option
    settings = Settings(
        repeats=_repeat_count(config),
        strict_leaks=bool(
            config.getini("agents_run_strict_leaks") if strict_option is None else strict_option
        ),
        services=_services_config() if services else None,
    )
    if settings.repeats > 1 and not config.pluginmanager.has_plugin("repeat"):
        raise pytest.UsageError(
            "--repeat-deterministic needs the pytest-repeat plugin, which is not loaded "
            "(remove -p no:repeat)"
        )
    config.stash[_settings_key] = settings
    config.stash[_spare_loop_key] = SpareLoop()
    guardrails.configure(config)
    traces = golden.GoldenTraces(config, lambda item: _test_of(item, settings.repeats))
    config.pluginmanager.register(traces, "agents-run-golden")
    if not hasattr(config, "workerinput"):  # an xdist worker only records; the controller compares
        checker = DeterminismChecker(config, golden.trace_dir(config))
        config.pluginmanager.register(checker, "agents-run-determinism")
        if config.pluginmanager.has_plugin("xdist"):
            config.pluginmanager.register(
                golden.XdistStaleGolden(traces), "agents-run-golden-xdist"
            )


def _test_of(item: pytest.Item, repeats: int) -> str:
    """The test's node id without a repeat's own id: what its repeats have in common."""
    return nodeid_without_repeat(item.nodeid, *repeat_position(item, repeats))


def pytest_unconfigure(config: pytest.Config) -> None:
    spare = config.stash.get(_spare_loop_key, None)
    if spare is not None:
        spare.close()


def _services_config() -> InfraConfig:
    try:
        config = read_config(os.environ)
    except InfraConfigError as error:
        raise pytest.UsageError(f"agents-run services mode: {error}") from None
    if config.is_all_memory:
        raise pytest.UsageError(
            f"agents-run services mode needs real services, but {BUS_URL}, {QUEUE_URL} and "
            f"{STORE_URL} are all unset or memory://; set them, e.g. "
            f"{BUS_URL}=redis://127.0.0.1:6379/0 {QUEUE_URL}=redis://127.0.0.1:6379/0 "
            f"{STORE_URL}=postgresql://postgres@127.0.0.1:5432/test"
        )
    return config


def _services_infra(request: pytest.FixtureRequest, services: InfraConfig) -> Infra:
    """Services mode: the test's infra on the configured servers, in a namespace of its own."""
    namespace = fresh_namespace(request.config)
    config = isolated(services, namespace)
    request.node.user_properties.append((NAMESPACE_PROPERTY, namespace))
    # Runs after the fixture closed the infra (see the hookspec), also where the test failed.
    request.addfinalizer(
        lambda: _run_in_a_fresh_loop(remove_namespace(config), "removing its namespace")
    )
    _run_in_a_fresh_loop(create_namespace(config), "creating its namespace")
    # Its random ids and system clock are replaced by the fixture, as for any hook: run ids
    # repeat in every fresh namespace, so repeats can be compared.
    return build_infra(config)


def fresh_namespace(config: pytest.Config) -> str:
    """``t_<xdist worker or main>_<12 hex>``: a PostgreSQL schema and a Redis key prefix that no
    other test, worker or user of the same servers has."""
    workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
    worker = str(workerinput["workerid"]) if workerinput else "main"
    worker = re.sub(r"[^a-z0-9]", "_", worker.lower())[:24]
    return f"t_{worker}_{uuid.uuid4().hex[:12]}"


@pytest.hookimpl(trylast=True)  # a project's own implementation (conftest.py) comes first
def pytest_agents_run_make_infra(request: pytest.FixtureRequest) -> Infra:
    services = request.config.stash[_settings_key].services
    return Infra.in_memory() if services is None else _services_infra(request, services)


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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.stash[_settings_key].services is not None:
        for item in items:
            marker = item.get_closest_marker(MEMORY_ONLY_MARKER)
            if marker is not None:
                why = marker.kwargs.get("reason", "looks inside the in-memory adapters")
                item.add_marker(
                    pytest.mark.skip(reason=f"{MEMORY_ONLY_MARKER} in services mode: {why}")
                )
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


@pytest.fixture(autouse=True)
def _agents_run_agent_registry() -> Iterator[None]:
    """Agents a test (or its function-scoped fixtures) registers do not leak into the next
    test; agents it unregisters come back. Set up first, so it is torn down last."""
    with restoring_agents():
        yield


@pytest.fixture
def infra(request: pytest.FixtureRequest) -> Iterator[Infra]:
    """Fresh infra for this test: what ``get_infra()`` returns until the test ends.

    Made by the ``pytest_agents_run_make_infra`` hook (in-memory by default; real servers in a
    fresh namespace under ``--agents-run-services``), with sequential ids and a manual clock in
    place of production ones (see ``deterministic_infra``) and its ports recorded for the
    determinism check. After the test: a passing test that left work behind gets an
    ``InfraLeakWarning`` (an error under ``--agents-run-strict-leaks``), the infra is closed (on
    the loop the test used it on), and ``reset_infra()`` runs, also where the test or its setup
    failed.
    """
    item = request.node
    made = item.ihook.pytest_agents_run_make_infra(request=request)
    if not isinstance(made, Infra):
        raise TypeError(
            "pytest_agents_run_make_infra must return an agents_run.Infra, "
            f"got {type(made).__name__}"
        )
    made = with_test_ids_and_clock(made)
    trace = Trace()
    # Closed on the loop its ports ran on, which has usually ended by the teardown (loops.py).
    closing = LoopBoundCleanup(
        lambda: _close(recorded),
        timeout=TEARDOWN_TIMEOUT,
        single_loop=item.config.stash[_settings_key].services is not None,
        spare=item.config.stash[_spare_loop_key],
    )
    recorded = recording_infra(made, trace, closing.bind)
    set_infra(recorded)
    yield recorded
    check_leaks = all(report.passed for report in item.stash.get(_phase_reports_key, []))
    try:
        closed = closing.result()
    finally:
        reset_infra()
    if item.get_closest_marker(MARKER) is not None or golden.uses_golden(item):
        # Here rather than at report time: a normalise hook that raises fails this teardown.
        item.stash[_trace_key] = _normalized(item, trace.entries)
    if check_leaks:
        if closed.leak_check_error is not None:
            raise closed.leak_check_error
        if closed.leaks:
            _report_leaks(item, closed.leaks, strict=item.config.stash[_settings_key].strict_leaks)


@dataclass(frozen=True)
class _Closed:
    leaks: list[str]
    leak_check_error: Exception | None  # raised only where the test passed


async def _close(infra: Infra) -> _Closed:
    # The check runs when the loop ends, before the test's outcome is known; teardown decides.
    try:
        closed = _Closed(await find_leaks(infra), None)
    except Exception as error:
        closed = _Closed([], error)
    await infra.aclose()  # after the check: closing the bus closes its subscriptions
    return closed


def _run_in_a_fresh_loop(coroutine: Coroutine[Any, Any, None], doing: str) -> None:
    # A loop_factory keeps the Runner from replacing the thread's current loop.
    with asyncio.Runner(loop_factory=asyncio.new_event_loop) as runner:
        try:
            runner.run(asyncio.wait_for(coroutine, TEARDOWN_TIMEOUT))
        except TimeoutError:
            raise TimeoutError(
                f"agents-run: {doing} took longer than {TEARDOWN_TIMEOUT:g}s; a server did not "
                "answer"
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
        traced = _trace_key in item.stash
        trace = item.stash.get(_trace_key, [])
        if traced:
            del item.stash[_trace_key]
        repeat, of = repeat_position(item, item.config.stash[_settings_key].repeats)
        test = nodeid_without_repeat(item.nodeid, repeat, of)
        outcome = outcome_of(reports)
        directory = golden.trace_dir(item.config)
        if traced and directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
            repeat_trace_file(directory, test, repeat, of).write_text(
                dump_trace(trace) + "\n", encoding="utf-8"
            )
        if item.get_closest_marker(MARKER) is not None:
            record = RepeatRecord(test=test, repeat=repeat, of=of, outcome=outcome, trace=trace)
            report.user_properties.append((RECORD_PROPERTY, record.to_json()))
        golden.after_test(item, test, trace, outcome, report)
    return report


def _normalized(item: pytest.Item, entries: list[TraceEntry]) -> list[TraceEntry]:
    copies = copy.deepcopy(entries)
    for entry in copies:
        item.ihook.pytest_agents_run_normalize_trace_entry(entry=entry, item=item)
    return as_json([entry for entry in copies if entry])
