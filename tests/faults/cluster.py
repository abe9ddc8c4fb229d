"""``agents-run`` worker and publisher processes on one namespaced configuration, which a fault
test starts, kills and replaces, and an infra in the test's own process to start, cancel and
stream runs on the same servers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from agents_run import Infra, RunEvent
from agents_run.config import (
    InfraConfig,
    build_infra,
    create_namespace,
    isolated,
    read_config,
    remove_namespace,
)
from tests.services import postgres_url, process_env, redis_url

AGENTS = "tests.faults.agents"
STOP_DEADLINE = 30.0  # for a process to obey SIGTERM (it drains its runs first)
START_DEADLINE = 60.0  # for a process to log its started line on a loaded machine
# Each command logs this once its signal handlers are in: SIGTERM before it is the default action.
STARTED_LINES = {"worker": "worker started:", "publisher": "publisher started"}
LONG_FAULTS = os.environ.get("AGENTS_RUN_LONG_FAULTS") == "1"


def long_or_short(long: int, short: int) -> int:
    """How many rounds a fault test makes: ``long`` where AGENTS_RUN_LONG_FAULTS=1."""
    return long if LONG_FAULTS else short


class Cluster:
    """Processes on ``config``; each one's stderr in ``folder`` for the failure message."""

    def __init__(self, config: InfraConfig, folder: Path) -> None:
        self.config = config
        self.folder = folder
        self.processes: list[subprocess.Popen[bytes]] = []
        self._logs: dict[int, Path] = {}
        self._started_lines: dict[int, str] = {}

    def start(
        self, command: str, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """``agents-run COMMAND ARGS`` on the cluster's configuration (``env`` added)."""
        log = self.folder / f"{command}-{len(self.processes) + 1}.log"
        with log.open("wb") as stderr:
            process = subprocess.Popen(
                [sys.executable, "-m", "agents_run.entrypoints.cli", command, *args],
                env=process_env(self.config) | (env or {}),
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        self.processes.append(process)
        self._logs[process.pid] = log
        self._started_lines[process.pid] = STARTED_LINES.get(command, "")
        return process

    def worker(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        return self.start("worker", "--agents", AGENTS, *args, env=env)

    def publisher(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        return self.start("publisher", *args, env=env)

    def kill(self, process: subprocess.Popen[bytes], how: int = signal.SIGKILL) -> int:
        """Send ``how`` and wait for the process to end; its exit code."""
        process.send_signal(how)
        return process.wait(timeout=STOP_DEADLINE)

    def log_of(self, process: subprocess.Popen[bytes]) -> str:
        return self._logs[process.pid].read_text(encoding="utf-8", errors="replace")

    def logs(self) -> str:
        return "\n".join(
            f"--- {log.name} (exit {process.returncode}) ---\n{self.log_of(process)[-4000:]}"
            for process, log in ((p, self._logs[p.pid]) for p in self.processes)
        )

    def has_started(self, process: subprocess.Popen[bytes]) -> bool:
        """True once ``process`` logged its started line (it handles SIGTERM from then on)."""
        return self._started_lines[process.pid] in self.log_of(process)

    def _wait_started(self, processes: list[subprocess.Popen[bytes]]) -> list[str]:
        """Wait (at most START_DEADLINE) until each process started or ended; what did not."""
        deadline = time.monotonic() + START_DEADLINE
        waiting = list(processes)
        while waiting and time.monotonic() < deadline:
            waiting = [p for p in waiting if p.poll() is None and not self.has_started(p)]
            if waiting:
                time.sleep(0.05)
        return [f"{self._logs[p.pid].name} never logged that it started" for p in waiting]

    def stop_all(self) -> list[str]:
        """SIGTERM to every live process once it has started (so it handles the signal), SIGKILL
        to one that outlasts the deadline; what went wrong (a process that never started,
        ignored SIGTERM or exited with an error after it)."""
        running = [p for p in self.processes if p.poll() is None]
        complaints = self._wait_started(running)
        for process in running:
            process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_DEADLINE
        for process in running:
            try:
                code = process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                complaints.append(f"{self._logs[process.pid].name} ignored SIGTERM")
                continue
            if code == -signal.SIGTERM and " started" not in self.log_of(process):
                continue  # ended before it set up its handlers (or did anything): nothing to drain
            if code != 0:
                complaints.append(f"{self._logs[process.pid].name} exited {code} after SIGTERM")
        return complaints


def services_config_on(
    bus_and_queue_url: str | None = None, store_url: str | None = None
) -> InfraConfig:
    """Redis bus, BullMQ queue and PostgreSQL store (the test servers unless given) in a fresh
    namespace; skips the test where a server does not answer (fails in CI)."""
    redis_at = bus_and_queue_url or redis_url()
    services = read_config(
        {
            "AGENTS_RUN_BUS_URL": redis_at,
            "AGENTS_RUN_QUEUE_URL": redis_at,
            "AGENTS_RUN_STORE_URL": store_url or postgres_url(),
        }
    )
    return isolated(services, f"t_fault_{uuid.uuid4().hex[:12]}")


@contextlib.asynccontextmanager
async def running_cluster(config: InfraConfig) -> AsyncIterator[tuple[Cluster, Infra]]:
    """A cluster on ``config`` (its namespace created and, afterwards, removed) and this
    process's infra on it. Fails the test where a process ignored SIGTERM or failed after it."""
    await create_namespace(config)
    with tempfile.TemporaryDirectory(prefix="agents-run-faults-") as folder:
        cluster = Cluster(config, Path(folder))
        infra = build_infra(config)
        complaints: list[str] = []
        try:
            yield cluster, infra
        except BaseException:
            print(cluster.logs())  # shown with the failure, under "Captured stdout call"
            raise
        finally:
            # In a thread: the loop may run what the processes need to stop (a test's proxy).
            complaints = await asyncio.to_thread(cluster.stop_all)
            logs = cluster.logs()
            await infra.aclose()
            await remove_namespace(config)
        if complaints:
            pytest.fail("; ".join(complaints) + "\n" + logs, pytrace=False)


async def within(
    seconds: float, condition: Callable[[], Awaitable[bool]], what: str, *, every: float = 0.05
) -> float:
    """Wait until ``condition`` holds; the seconds it took. Fails the test after ``seconds``."""
    started = time.monotonic()
    while not await condition():
        if time.monotonic() - started > seconds:
            pytest.fail(f"still not true after {seconds:g} s: {what}", pytrace=False)
        await asyncio.sleep(every)
    return time.monotonic() - started


async def terminal_events(infra: Infra, run_ids: list[str]) -> list[RunEvent | None]:
    """Each run's terminal event, None for a run still going (read from the store)."""
    events: list[RunEvent | None] = []
    for run_id in run_ids:
        run = await infra.store.get_run(run_id)
        if not run.status.is_terminal:
            events.append(None)
            continue
        (last,) = await infra.store.read_events(run_id, run.last_seq, limit=1)
        events.append(last)
    return events


async def terminal_types(infra: Infra, run_ids: list[str]) -> list[str | None]:
    """Each run's terminal event type, None for a run still going."""
    return [None if e is None else e.type for e in await terminal_events(infra, run_ids)]


async def assert_all_finished(infra: Infra, run_ids: list[str]) -> None:
    """Every run ended ``RunFinished``; else the terminal events are the failure message."""
    events = await terminal_events(infra, run_ids)
    assert [None if e is None else e.type for e in events] == ["RunFinished"] * len(run_ids), [
        None if e is None else (e.run_id, e.type, e.data) for e in events
    ]
