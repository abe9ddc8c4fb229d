"""``agents-run replay`` and ``agents-run export`` on runs stored in SQLite and PostgreSQL, as
a user (or a CI job) runs them."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import tests.histories.agents  # noqa: F401 - registers trip-planner here too
from agents_run import ManualClock, reset_infra, run_until_idle, start_run, use_infra
from agents_run.config import (
    InfraConfig,
    build_infra,
    config_env,
    create_namespace,
    isolated,
    read_config,
    remove_namespace,
)
from agents_run.entrypoints.cli import main
from tests.services import postgres_url

AGENTS = ["--agents", "tests.histories.agents"]
CHANGED_AGENTS = ["--agents", "tests.histories.changed_agents"]
ROOT = Path(__file__).parents[2]


async def record_runs(config: InfraConfig) -> dict[str, str]:
    """A finished and a failed trip-planner run on ``config``'s store, by city."""
    # A manual clock: the agent's ctx.sleep(60) takes no time.
    infra = dataclasses.replace(build_infra(config), clock=ManualClock())
    try:
        with use_infra(infra):
            runs = {
                city: await start_run("trip-planner", {"city": city})
                for city in ("lisbon", "atlantis")
            }
            await run_until_idle()
    finally:
        await infra.aclose()
    return runs


@pytest.fixture
def stored(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, str]]:
    """Runs in a store of the test's own, which the environment points every command at: an
    SQLite file, or in services mode a PostgreSQL schema."""
    on_postgres = bool(request.config.getoption("agents_run_services", None))
    if not on_postgres:
        config = read_config({"AGENTS_RUN_STORE_URL": f"sqlite:///{tmp_path / 'runs.db'}"})
    else:
        config = isolated(
            read_config({"AGENTS_RUN_STORE_URL": postgres_url()}),
            f"t_replay_{uuid.uuid4().hex[:12]}",
        )
    asyncio.run(create_namespace(config))
    for name in list(os.environ):
        if name.startswith("AGENTS_RUN_"):
            monkeypatch.delenv(name)
    for name, value in config_env(config).items():
        monkeypatch.setenv(name, value)
    try:
        yield asyncio.run(record_runs(config))
    finally:
        reset_infra()  # main() made the configured infra current
        if on_postgres:
            asyncio.run(remove_namespace(config))


def export(run_id: str, path: Path) -> str:
    assert main(["export", run_id, "-o", str(path)]) == 0
    return path.read_text()


def test_a_stored_run_that_reproduces_exits_0_with_a_summary_and_writes_nothing(
    stored: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = stored["lisbon"]
    before = export(run_id, tmp_path / "before.json")
    capsys.readouterr()
    assert main(["replay", run_id, *AGENTS]) == 0
    assert capsys.readouterr().out == (
        f"run {run_id} (agent trip-planner) reproduced to its end: 3 RunSteps, 4 recorded "
        "calls (RunFinished at seq 5)\n"
    )
    assert main(["replay", stored["atlantis"], *AGENTS]) == 0
    assert "(RunFailed LookupError at seq 2)" in capsys.readouterr().out
    assert export(run_id, tmp_path / "after.json") == before


def test_changed_agent_code_exits_1_with_the_first_difference(
    stored: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "agents_run.entrypoints.cli",
            "replay",
            stored["lisbon"],
            *CHANGED_AGENTS,
        ],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 1, run.stderr
    assert run.stdout == ""
    assert run.stderr == (
        f"agents-run replay: NondeterministicReplay: run {stored['lisbon']!r} (agent "
        "'trip-planner'): the agent departed from the run's record at journal entry 2 name: "
        'recorded "search places", now "find places"\n'
    )


def test_an_exported_history_replays_from_its_file_without_the_store(
    stored: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "lisbon.json"
    document = json.loads(export(stored["lisbon"], path))
    assert (document["format"], document["version"], len(document["events"])) == (
        "agents-run-history",
        1,
        5,
    )
    monkeypatch.delenv("AGENTS_RUN_STORE_URL")  # memory:// from here on
    capsys.readouterr()
    assert main(["replay", "--file", str(path), *AGENTS]) == 0
    assert "reproduced to its end" in capsys.readouterr().out
    path.write_text(path.read_text().replace('"trip-planner"', '"retired"'))
    assert main(["replay", "--file", str(path)]) == 2
    assert "UnknownAgent: unknown agent 'retired'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["replay", "run-404"], "RunNotFound: run 'run-404' not found"),
        (["export", "run-404"], "RunNotFound: run 'run-404' not found"),
        (["replay"], "InvalidArgument: give a RUN_ID or --file FILE (one of them)"),
        (["replay", "run-1", "--file", "x.json"], "InvalidArgument: give a RUN_ID or --file"),
        (["replay", "--file", "/nonexistent/h.json"], "InvalidHistory: cannot read run history"),
    ],
    ids=["unknown-run", "export-unknown-run", "neither", "both", "missing-file"],
)
def test_bad_usage_exits_2_and_says_why(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], args: list[str], error: str
) -> None:
    for name in list(os.environ):
        if name.startswith("AGENTS_RUN_"):
            monkeypatch.delenv(name)
    try:
        assert main(args) == 2
    finally:
        reset_infra()
    assert error in capsys.readouterr().err
