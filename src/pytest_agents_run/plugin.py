"""The pytest plugin: a fresh ``infra`` per test, a report of what a test left behind, and
``--repeat-deterministic=N`` that proves repeats of a ``deterministic`` test behave the same."""

from __future__ import annotations

import json
import re
from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING

import pytest

from pytest_agents_run import golden, guardrails, hookspecs
from pytest_agents_run.determinism import (
    RECORD_PROPERTY,
    DeterminismChecker,
    RepeatRecord,
    nodeid_without_repeat,
    outcome_of,
    repeat_position,
)
from pytest_agents_run.golden import golden_trace  # noqa: F401 - a fixture of the plugin
from pytest_agents_run.session import (
    MARKER,
    MEMORY_ONLY_MARKER,
    Settings,
    phase_reports_key,
    settings_key,
    spare_loop_key,
    trace_key,
)
from pytest_agents_run.tracefiles import dump_trace, repeat_trace_file

if TYPE_CHECKING:
    from agents_run import Infra
    from agents_run.config import InfraConfig


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
        help="give each test real infra as the AGENTS_RUN_*_URL variables configure it, "
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
    config.stash[settings_key] = settings
    guardrails.configure(config)
    traces = golden.GoldenTraces(config, lambda item: _test_of(item, settings.repeats))
    config.pluginmanager.register(traces, "agents-run-golden")
    if not hasattr(config, "workerinput"):  # an xdist worker only records; the controller compares
        if config.getoption("agents_run_update_traces"):
            config.pluginmanager.register(golden.GoldenRecorder(traces), "agents-run-golden-update")
        checker = DeterminismChecker(config, golden.trace_dir(config))
        config.pluginmanager.register(checker, "agents-run-determinism")
        if config.pluginmanager.has_plugin("xdist"):
            config.pluginmanager.register(
                golden.XdistStaleGolden(traces), "agents-run-golden-xdist"
            )


def _services_config() -> InfraConfig:
    # Imported where needed (here and below): agents_run would slow every pytest start-up.
    from pytest_agents_run.infra_fixture import services_config  # noqa: PLC0415

    return services_config()


def _test_of(item: pytest.Item, repeats: int) -> str:
    """The test's node id without a repeat's own id: what its repeats have in common."""
    return nodeid_without_repeat(item.nodeid, *repeat_position(item, repeats))


def pytest_unconfigure(config: pytest.Config) -> None:
    spare = config.stash.get(spare_loop_key, None)
    if spare is not None:
        spare.close()


@pytest.hookimpl(trylast=True)  # a project's own implementation (conftest.py) comes first
def pytest_agents_run_make_infra(request: pytest.FixtureRequest) -> Infra:
    from pytest_agents_run.infra_fixture import default_infra  # noqa: PLC0415

    return default_infra(request)


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
    repeats = metafunc.config.stash[settings_key].repeats
    if repeats > 1:
        metafunc.definition.add_marker(pytest.mark.repeat(repeats), append=False)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.stash[settings_key].services is not None:
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
    from agents_run import restoring_agents  # noqa: PLC0415

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
    failed. A test that called none of its ports left nothing behind: it is not checked.
    """
    from pytest_agents_run.infra_fixture import fresh_infra  # noqa: PLC0415

    yield from fresh_infra(request)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    reports = item.stash.setdefault(phase_reports_key, [])
    reports.append(report)
    if report.when != "teardown":
        return report
    del item.stash[phase_reports_key]
    # No trace where the infra fixture was not ours (a project's own) or never set up.
    text = item.stash.get(trace_key, None)
    if text is not None:
        del item.stash[trace_key]
    marked = item.get_closest_marker(MARKER) is not None
    if text is None and not marked and not golden.uses_golden(item):
        return report
    repeat, of = repeat_position(item, item.config.stash[settings_key].repeats)
    test = nodeid_without_repeat(item.nodeid, repeat, of)
    outcome = outcome_of(reports)
    directory = golden.trace_dir(item.config)
    if text is not None and directory is not None:
        directory.mkdir(parents=True, exist_ok=True)
        repeat_trace_file(directory, test, repeat, of).write_text(
            dump_trace(json.loads(text)) + "\n", encoding="utf-8"
        )
    if marked:
        record = RepeatRecord(test, repeat, of, outcome, "[]" if text is None else text)
        report.user_properties.append((RECORD_PROPERTY, record.to_json()))
    if golden.uses_golden(item):
        golden.after_test(item, test, [] if text is None else json.loads(text), outcome, report)
    return report
