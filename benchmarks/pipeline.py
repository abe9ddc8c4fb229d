"""Side-by-side throughput of the whole pipeline on each infrastructure, in one run.

    .venv/bin/python -m benchmarks.pipeline [--runs 200] [--words 20] [--infra NAME ...]

Each infra is timed on the same work, in one process: start the runs, execute them with the
worker, publish the outbox, then stream every run back (backfill from the store). Rates are per
second; the last column is the ratio of appended events per second to the first infra's.
Networked infra runs in a throwaway namespace on AGENTS_RUN_TEST_REDIS_URL and
AGENTS_RUN_TEST_POSTGRES_URL (defaults: the local servers), removed afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from agents_run import (
    Infra,
    publish_pending_outbox_events_once,
    run_worker_once,
    start_run,
    stream_run,
    use_infra,
)
from agents_run.config import build_infra, create_namespace, isolated, read_config, remove_namespace
from benchmarks.measure import POSTGRES_URL, REDIS_URL

REDIS, POSTGRES = REDIS_URL, POSTGRES_URL  # the servers every benchmark uses
SQLITE = f"sqlite://{tempfile.gettempdir()}/agents-run-benchmark.db"

# name -> the configuration, as an operator would write it.
INFRAS: dict[str, Mapping[str, str]] = {
    "memory": {},
    "sqlite store, memory bus and queue": {"AGENTS_RUN_STORE_URL": SQLITE},
    "postgres store, memory bus and queue": {"AGENTS_RUN_STORE_URL": POSTGRES},
    "postgres, redis bus, bullmq queue": {
        "AGENTS_RUN_STORE_URL": POSTGRES,
        "AGENTS_RUN_BUS_URL": REDIS,
        "AGENTS_RUN_QUEUE_URL": REDIS,
    },
}


@dataclass(frozen=True)
class Result:
    infra: str
    starts_per_s: float
    events_appended_per_s: float
    events_published_per_s: float
    events_streamed_per_s: float


async def _timed(work: Callable[[], Awaitable[None]]) -> float:
    began = time.perf_counter()
    await work()
    return time.perf_counter() - began


async def measure(name: str, infra: Infra, runs: int, words: int) -> Result:
    text = " ".join(f"w{i}" for i in range(words))
    run_ids: list[str] = []
    events = runs * (words + 2)

    async def start_all() -> None:
        for _ in range(runs):
            run_ids.append(await start_run("echo", {"text": text}))

    async def work_all() -> None:
        while await run_worker_once():
            pass

    async def publish_all() -> None:
        while await publish_pending_outbox_events_once():
            pass

    async def stream_all() -> None:
        for run_id in run_ids:
            async for _ in stream_run(run_id):
                pass

    with use_infra(infra):
        try:
            started = await _timed(start_all)
            worked = await _timed(work_all)
            published = await _timed(publish_all)
            streamed = await _timed(stream_all)
        finally:
            await infra.aclose()
    return Result(name, runs / started, events / worked, events / published, events / streamed)


def report(results: list[Result]) -> str:
    base = results[0]
    lines = [
        "| infra | starts/s | appended/s | published/s | streamed/s | appended vs first |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        ratio = r.events_appended_per_s / base.events_appended_per_s
        lines.append(
            f"| {r.infra} | {r.starts_per_s:,.0f} | {r.events_appended_per_s:,.0f} | "
            f"{r.events_published_per_s:,.0f} | {r.events_streamed_per_s:,.0f} | {ratio:.3g}x |"
        )
    return "\n".join(lines)


async def main(names: list[str], runs: int, words: int) -> None:
    results = []
    for name in names:
        config = isolated(read_config(INFRAS[name]), f"bench_{uuid.uuid4().hex[:12]}")
        await create_namespace(config)
        try:
            results.append(await measure(name, build_infra(config), runs, words))
        finally:
            await remove_namespace(config)
    print(f"{runs} runs x {words + 2} events each\n")
    print(report(results))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--words", type=int, default=20)
    parser.add_argument("--infra", action="append", choices=sorted(INFRAS), default=None)
    args = parser.parse_args()
    asyncio.run(main(args.infra or list(INFRAS), args.runs, args.words))
