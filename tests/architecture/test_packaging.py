"""The plain install is the harness on the in-memory default: drivers and test tools are extras,
imported only where a configuration names them."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys

import pytest
from packaging.requirements import Requirement

DRIVERS = ("redis", "hiredis", "bullmq", "psycopg", "psycopg_pool")
RUN_TIMEOUT_SECONDS = 60


def python(script: str) -> subprocess.CompletedProcess[str]:
    """``script`` in a fresh interpreter, on no configuration of the environment."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("AGENTS_RUN_")}
    return subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_SECONDS,
        check=False,
    )


def requirements(extra: str | None = None) -> set[str]:
    """The distributions ``pip install agents-run[extra]`` brings (None: the plain install)."""
    names = set()
    for line in importlib.metadata.requires("agents-run") or []:
        requirement = Requirement(line)
        wanted = requirement.marker is None or (
            extra is not None and requirement.marker.evaluate({"extra": extra})
        )
        if wanted:
            names.add(requirement.name)
    return names


def test_the_plain_install_requires_nothing() -> None:
    assert requirements() == set()


@pytest.mark.parametrize(
    ("extra", "brings"),
    [
        ("redis", {"redis", "bullmq"}),
        ("postgres", {"psycopg", "psycopg-pool"}),
        ("pytest", {"pytest", "pytest-repeat"}),
        ("all", {"redis", "bullmq", "psycopg", "psycopg-pool", "pytest", "pytest-repeat"}),
    ],
)
def test_each_extra_brings_its_drivers_or_tools(extra: str, brings: set[str]) -> None:
    assert brings <= requirements(extra)


def test_the_dev_extra_brings_everything_the_others_do() -> None:
    assert requirements("all") <= requirements("dev")


def test_importing_the_library_and_the_plugin_loads_no_driver() -> None:
    result = python(
        "import sys, agents_run, agents_run.config, pytest_agents_run.plugin\n"
        f"print(sorted(m for m in {DRIVERS!r} if m in sys.modules))"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_a_pytest_run_with_the_plugin_loads_no_driver(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        f"""
        import sys

        def test_no_driver_is_loaded(infra):
            assert [m for m in {DRIVERS!r} if m in sys.modules] == []
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=1)


@pytest.mark.parametrize(
    ("variable", "url", "missing", "extra"),
    [
        ("AGENTS_RUN_BUS_URL", "redis://:pw@127.0.0.1:1/0", "redis", "redis"),
        ("AGENTS_RUN_QUEUE_URL", "redis://:pw@127.0.0.1:1/0", "bullmq", "redis"),
        ("AGENTS_RUN_STORE_URL", "postgresql://app:pw@db/prod", "psycopg", "postgres"),
        ("AGENTS_RUN_STORE_URL", "postgresql://app:pw@db/prod", "psycopg_pool", "postgres"),
    ],
)
def test_a_configured_adapter_whose_driver_is_missing_names_the_extra_to_install(
    variable: str, url: str, missing: str, extra: str
) -> None:
    result = python(
        "import sys\n"
        f"sys.modules[{missing!r}] = None  # importing it now fails as if it were not installed\n"
        "from agents_run import InfraConfigError, load_infra_from_config\n"
        "try:\n"
        f"    load_infra_from_config({{{variable!r}: {url!r}}})\n"
        "except InfraConfigError as error:\n"
        "    print(error)\n"
    )
    assert result.returncode == 0, result.stderr
    assert f"{variable}=" in result.stdout
    assert f"needs the module {missing!r}, which is not installed" in result.stdout
    assert f"pip install 'agents-run[{extra}]'" in result.stdout
    assert ":pw@" not in result.stdout
