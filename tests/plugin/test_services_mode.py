"""Services mode (``--agents-run-services``): each test's infra on the real servers, in a fresh
namespace that is gone after the test, closed on the loop it ran on whatever runs that loop."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import psycopg
import pytest
import redis

from pytest_agents_run.session import NAMESPACE_PROPERTY, fresh_namespace
from tests.services import postgres_url, redis_url

# pytester runs in this process and inherits this project's "error" warning filter: let the
# projects it writes see InfraLeakWarning as a plain warning, as a default pytest set-up does.
pytestmark = pytest.mark.filterwarnings("default::pytest_agents_run.InfraLeakWarning")

SERVICES_INI = """
[pytest]
asyncio_mode = {mode}
asyncio_default_fixture_loop_scope = function
filterwarnings =
    error
    default::pytest_agents_run.InfraLeakWarning
"""

EVERY_LOOP_STYLE = """
import asyncio
import pytest
from agents_run import run_until_idle, start_run

async def use(infra):
    run_id = await start_run("echo", {"text": "a b"})
    await run_until_idle()
    assert [e.type for e in await infra.store.read_events(run_id)][-1] == "RunFinished"

def test_sync_with_asyncio_run(infra):
    asyncio.run(use(infra))

async def test_pytest_asyncio_auto_mode(infra):
    await use(infra)

@pytest.fixture
def anyio_backend():
    return "asyncio"

@pytest.mark.anyio
async def test_anyio(infra):
    await use(infra)

@pytest.mark.asyncio(loop_scope="module")
async def test_module_scoped_loop(infra):
    await use(infra)

@pytest.mark.asyncio(loop_scope="module")
async def test_module_scoped_loop_again(infra):
    await use(infra)

@pytest.mark.deterministic
async def test_deterministic(infra):
    await use(infra)

def test_never_uses_its_infra(infra):
    pass

async def test_fails_halfway(infra):
    await start_run("echo", {})
    raise AssertionError("fails on purpose")

async def test_leaves_a_job_and_a_subscription(infra):
    run_id = await start_run("echo", {})
    await infra.bus.subscribe(run_id)

@pytest.mark.agents_run_memory_only
def test_memory_only(infra):
    raise AssertionError("skipped in services mode")
"""


@pytest.fixture
def services(monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """The regular configuration pointed at the test servers (skips where they do not answer)."""
    redis, postgres = redis_url(), postgres_url()
    monkeypatch.setenv("AGENTS_RUN_BUS_URL", redis)
    monkeypatch.setenv("AGENTS_RUN_QUEUE_URL", redis)
    monkeypatch.setenv("AGENTS_RUN_STORE_URL", postgres)
    return redis, postgres


def namespaces_in(junit_xml: Path) -> list[str]:
    return [
        prop.attrib["value"]
        for prop in ET.parse(junit_xml).iter("property")
        if prop.attrib["name"] == NAMESPACE_PROPERTY
    ]


def assert_removed(namespaces: list[str], redis_at: str, postgres_at: str) -> None:
    with psycopg.connect(postgres_at) as connection:
        schemas = connection.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname = ANY(%s)", (namespaces,)
        ).fetchall()
    assert schemas == []
    client = redis.Redis.from_url(redis_at)
    try:
        for namespace in namespaces:
            assert list(client.scan_iter(match=f"{namespace}*", count=1000)) == []
    finally:
        client.close()


def assert_loops_closed_cleanly(result: pytest.RunResult) -> None:
    output = result.stdout.str() + result.stderr.str()
    for symptom in ("ResourceWarning", "nclosed", "Event loop is closed", "CancelledError"):
        assert symptom not in output


def test_every_loop_style_closes_its_infra_and_removes_its_namespace(
    pytester: pytest.Pytester, services: tuple[str, str]
) -> None:
    pytester.makeini(SERVICES_INI.format(mode="auto"))
    pytester.makepyfile(EVERY_LOOP_STYLE)
    junit = pytester.path / "junit.xml"
    result = pytester.runpytest(
        "--agents-run-services", "-p", "no:randomly", "-rs", f"--junitxml={junit}"
    )
    result.assert_outcomes(passed=8, failed=1, skipped=1, warnings=1)
    result.stdout.fnmatch_lines(
        [
            "*::test_leaves_a_job_and_a_subscription left work in its infra: 1 job not done*"
            "1 subscription open on run-000001*",
            "*agents_run_memory_only in services mode: looks inside the in-memory adapters*",
        ]
    )
    assert_loops_closed_cleanly(result)
    namespaces = namespaces_in(junit)
    assert len(namespaces) == 9  # every test but the skipped one
    assert all(name.startswith("t_main_") for name in namespaces)
    assert_removed(namespaces, *services)


def test_pytest_asyncio_strict_mode_in_services_mode(
    pytester: pytest.Pytester, services: tuple[str, str]
) -> None:
    pytester.makeini(SERVICES_INI.format(mode="strict"))
    pytester.makepyfile(
        """
        import pytest
        from agents_run import run_until_idle, start_run

        @pytest.mark.asyncio
        async def test_strict(infra):
            await start_run("echo", {"text": "a"})
            await run_until_idle()
        """
    )
    junit = pytester.path / "junit.xml"
    result = pytester.runpytest("--agents-run-services", f"--junitxml={junit}")
    result.assert_outcomes(passed=1)
    assert_loops_closed_cleanly(result)
    assert_removed(namespaces_in(junit), *services)


def test_under_xdist_with_repeats_namespaces_name_the_worker_and_repeats_agree(
    pytester: pytest.Pytester, services: tuple[str, str]
) -> None:
    pytester.makeini(SERVICES_INI.format(mode="auto") + "agents_run_services = true\n")
    pytester.makepyfile(EVERY_LOOP_STYLE)
    junit = pytester.path / "junit.xml"
    result = pytester.runpytest_subprocess(
        "-n", "2", "--repeat-deterministic=3", "-p", "no:randomly", f"--junitxml={junit}"
    )
    result.assert_outcomes(passed=10, failed=1, skipped=1, warnings=1)
    result.stdout.fnmatch_lines(["agents-run: 1 deterministic test, 3 runs, 0 divergences"])
    assert_loops_closed_cleanly(result)
    namespaces = namespaces_in(junit)
    assert len(namespaces) == 11
    assert {name[: len("t_gw0_")] for name in namespaces} <= {"t_gw0_", "t_gw1_"}
    assert_removed(namespaces, *services)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {},
            "*services mode needs real services, but AGENTS_RUN_BUS_URL, AGENTS_RUN_QUEUE_URL "
            "and AGENTS_RUN_STORE_URL are all unset or memory://*",
        ),
        (
            {"AGENTS_RUN_BUS_URL": "redis:/nowhere"},
            "*services mode: AGENTS_RUN_BUS_URL is malformed*",
        ),
    ],
)
def test_services_mode_without_a_usable_configuration_is_a_usage_error(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    message: str,
) -> None:
    for name in ("AGENTS_RUN_BUS_URL", "AGENTS_RUN_QUEUE_URL", "AGENTS_RUN_STORE_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    pytester.makepyfile("def test_nothing(infra):\n    pass\n")
    result = pytester.runpytest("--agents-run-services")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: agents-run {message.lstrip('*')}"])


def test_memory_only_tests_run_in_the_default_mode(project: pytest.Pytester) -> None:
    project.makepyfile(
        """
        import pytest
        from agents_run import InMemoryQueue

        @pytest.mark.agents_run_memory_only
        def test_memory_only(infra):
            assert isinstance(infra.queue, InMemoryQueue)
        """
    )
    project.runpytest("--strict-markers").assert_outcomes(passed=1)


def test_a_fresh_namespace_is_a_schema_and_a_key_prefix_of_its_own(
    pytestconfig: pytest.Config,
) -> None:
    first, second = fresh_namespace(pytestconfig), fresh_namespace(pytestconfig)
    assert first != second
    for namespace in (first, second):
        assert re.fullmatch(r"t_(main|gw[0-9]+)_[0-9a-f]{12}", namespace)
