"""How long after a worker is killed -9 another worker takes its run over, across processes on
Redis and PostgreSQL.

    .venv/bin/python -m benchmarks.lease_takeover [--kills 20] [--workers 2] [--lease-seconds S]

Each round starts a run of an agent that records its worker's pid and then waits, kills that
worker with SIGKILL as soon as the step is in the store, and times how long it takes until the
run's next attempt has ended it in the store (``RunFailed`` ``WorkerLost``, until runs resume by
replay), and until a client streaming the run sees that terminal event. A fresh worker replaces
the killed one. Runs in a throwaway namespace on AGENTS_RUN_TEST_REDIS_URL and
AGENTS_RUN_TEST_POSTGRES_URL (defaults: the local servers), removed afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid

import benchmarks.takeover_agents  # noqa: F401 - registers the agent here too, for start_run
from agents_run import RunEvent, get_infra, start_run, stream_run, use_infra
from agents_run.config import (
    InfraConfig,
    build_infra,
    config_env,
    create_namespace,
    isolated,
    read_config,
    remove_namespace,
)
from benchmarks.measure import POSTGRES_URL, REDIS_URL

REDIS, POSTGRES = REDIS_URL, POSTGRES_URL  # the servers every benchmark uses
ROUND_DEADLINE = 60.0
AGENTS = "benchmarks.takeover_agents"


def start_process(config: InfraConfig, *args: str) -> subprocess.Popen[bytes]:
    """``agents-run ARGS`` on ``config``, its output discarded."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTS_RUN_")}
    return subprocess.Popen(
        [sys.executable, "-m", "agents_run.entrypoints.cli", *args],
        env=env | config_env(config),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def start_worker(config: InfraConfig, lease_seconds: float | None) -> subprocess.Popen[bytes]:
    lease = [] if lease_seconds is None else ["--lease-seconds", str(lease_seconds)]
    return start_process(config, "worker", "--agents", AGENTS, *lease)


async def terminal_seen_by(stream: asyncio.Task[list[RunEvent]]) -> float:
    await stream
    return time.monotonic()


async def one_round(workers: dict[int, subprocess.Popen[bytes]]) -> tuple[float, float, str]:
    """Kill the worker of a fresh run; seconds until the store, then a stream, saw its end."""
    store = get_infra().store
    run_id = await start_run("records-its-pid", {})
    stream = asyncio.create_task(_collect(run_id))
    async with asyncio.timeout(ROUND_DEADLINE):
        while not (events := await store.read_events(run_id, 2, limit=1)):  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        pid = int(events[0].data["pid"])
        os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()
        workers.pop(pid).wait()
        while not (run := await store.get_run(run_id)).status.is_terminal:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        ended_at = time.monotonic()
        streamed_at = await terminal_seen_by(stream)
    (last,) = await store.read_events(run_id, run.last_seq)
    return ended_at - killed_at, streamed_at - killed_at, str(last.data.get("error_type"))


async def _collect(run_id: str) -> list[RunEvent]:
    return [event async for event in stream_run(run_id, poll_interval=0.1)]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def main(kills: int, worker_count: int, lease_seconds: float | None) -> None:
    services = read_config(
        {
            "AGENTS_RUN_BUS_URL": REDIS,
            "AGENTS_RUN_QUEUE_URL": REDIS,
            "AGENTS_RUN_STORE_URL": POSTGRES,
        }
    )
    config = isolated(services, f"bench_takeover_{uuid.uuid4().hex[:10]}")
    await create_namespace(config)
    started = [start_worker(config, lease_seconds) for _ in range(worker_count)]
    workers = {process.pid: process for process in started}
    publisher = start_process(config, "publisher")
    infra = build_infra(config)
    to_store: list[float] = []
    to_stream: list[float] = []
    try:
        with use_infra(infra):
            for round_number in range(1, kills + 1):
                stored, streamed, ending = await one_round(workers)
                to_store.append(stored)
                to_stream.append(streamed)
                print(
                    f"kill {round_number:2d}: ended {ending} in the store after {stored:.2f} s, "
                    f"seen by the stream after {streamed:.2f} s",
                    flush=True,
                )
                replacement = start_worker(config, lease_seconds)
                workers[replacement.pid] = replacement
    finally:
        for process in [*workers.values(), publisher]:
            process.send_signal(signal.SIGTERM)
        for process in [*workers.values(), publisher]:
            process.wait(timeout=30)
        await infra.aclose()
        await remove_namespace(config)
    lease = lease_seconds if lease_seconds is not None else config.lease_seconds
    print(f"\n{kills} kills, {worker_count} workers, lease {lease:g} s:")
    for what, values in [("kill -> taken over (store)", to_store), ("kill -> stream", to_stream)]:
        print(
            f"  {what:28s} p50 {statistics.median(values):.2f} s  "
            f"p90 {percentile(values, 0.9):.2f} s  p99 {percentile(values, 0.99):.2f} s  "
            f"max {max(values):.2f} s"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--lease-seconds", type=float, default=None)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.kills, arguments.workers, arguments.lease_seconds))
