"""The ``agents-run`` command as a user runs it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import pytest

from agents_run.entrypoints.cli import main

# main() makes the configured infra current: the fixture restores a fresh one afterwards.
pytestmark = [pytest.mark.deterministic, pytest.mark.usefixtures("infra")]

AGENTS_RUN = [sys.executable, "-m", "agents_run.entrypoints.cli"]
MEMORY_ENV = {key: value for key, value in os.environ.items() if not key.startswith("AGENTS_RUN_")}


@pytest.fixture(autouse=True)
def in_memory_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    """The commands here run on the in-memory default, also where the suite runs in services
    mode (which configures real servers in the environment)."""
    for name in list(os.environ):
        if name.startswith("AGENTS_RUN_"):
            monkeypatch.delenv(name)


def test_demo_runs_every_step_on_the_in_memory_default(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "streamed from seq 3 (backfill from the middle)" in out
    assert "run-000003  seq   1  RunCancelled" in out
    assert (
        "== summary: 4 runs (1 cancelled, 3 finished); 22 events appended; 8 received live" in out
    )


def test_a_malformed_configuration_is_a_clear_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTS_RUN_STORE_URL", "mysql://admin:hunter2@db/runs")
    assert main(["cancel", "run-1"]) == 2
    err = capsys.readouterr().err
    assert "InfraConfigError: AGENTS_RUN_STORE_URL='mysql://admin:***@db/runs'" in err
    assert "hunter2" not in err


def test_an_agent_module_that_does_not_import_is_a_clear_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["start", "echo", "--agents", "no_such_agents_module"]) == 2
    assert "--agents: cannot import 'no_such_agents_module'" in capsys.readouterr().err


def sigterm_after_start(*args: str) -> tuple[str, int, str]:
    """Start ``agents-run ARGS``, wait for its first log line, send SIGTERM; return that line,
    the exit code and the rest of stderr. A process that hangs is killed after 30 s."""
    process = subprocess.Popen(
        [*AGENTS_RUN, *args], env=MEMORY_ENV, stderr=subprocess.PIPE, text=True
    )
    watchdog = threading.Timer(30, process.kill)  # a hung process ends the readline below
    watchdog.start()
    try:
        assert process.stderr is not None
        first_line = process.stderr.readline()
        process.send_signal(signal.SIGTERM)
        _, rest = process.communicate(timeout=10)
    finally:
        watchdog.cancel()
        if process.poll() is None:
            process.kill()
    return first_line, process.returncode, rest


def test_the_worker_drains_on_sigterm_and_exits_cleanly() -> None:
    started, code, err = sigterm_after_start(
        "worker", "--concurrency", "2", "--grace", "1", "--orphan-after", "120"
    )
    assert "worker started: concurrency 2, agents echo" in started
    assert "runs with no live job end after 120s" in started
    assert code == 0, err
    assert "draining" in err
    assert "worker stopped after 0 job(s)" in err


def test_the_publisher_stops_on_sigterm() -> None:
    started, code, err = sigterm_after_start("publisher")
    assert "publisher started" in started
    assert code == 0, err
    assert "publisher stopped after 0 event(s)" in err


def test_a_bad_concurrency_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["worker", "--concurrency", "0"])
    assert exited.value.code == 2
    assert "expected an integer >= 1, got '0'" in capsys.readouterr().err


@pytest.mark.parametrize("seconds", ["59", "inf", "nan", "ten"])
def test_a_short_or_malformed_orphan_age_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], seconds: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["worker", "--orphan-after", seconds])
    assert exited.value.code == 2
    assert f"expected finite seconds >= 60, got {seconds!r}" in capsys.readouterr().err


def test_tail_of_an_unknown_run_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tail", "run-404"]) == 2
    assert "RunNotFound: run 'run-404' not found" in capsys.readouterr().err


def test_a_reader_that_goes_away_ends_the_command_quietly() -> None:
    demo = subprocess.Popen(
        [*AGENTS_RUN, "demo"],
        env=MEMORY_ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,
    )
    assert demo.stdout is not None
    demo.stdout.close()  # as `agents-run demo | head -1` does, before the demo writes
    _, err = demo.communicate(timeout=30)
    assert demo.returncode == 141
    assert "Traceback" not in err
