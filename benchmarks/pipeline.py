"""Side-by-side throughput of the whole pipeline on each infrastructure, in one run.

    .venv/bin/python -m benchmarks.pipeline [--runs 200] [--words 20] [--infra NAME ...]

Each infra is timed on the same work: start the runs, execute them with the worker, publish the
outbox, then stream every run back from the store (backfill). Rates are per second and the last
column is the ratio to the first infra, so results from one machine compare with each other.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from agents_run import (
    Infra,
    load_infra_from_config,
    publish_pending_outbox_events_once,
    run_worker_once,
    start_run,
    stream_run,
    use_infra,
)

# name -> environment for load_infra_from_config; the production entries need running servers.
INFRAS: dict[str, Mapping[str, str]] = {
    "memory": {},
}


@dataclass(frozen=True)
class Result:
    infra: str
    starts_per_s: float
    events_appended_per_s: float
    events_published_per_s: float
    events_streamed_per_s: float


async def _timed(work: Callable[[], object]) -> float:
    began = time.perf_counter()
    result = work()
    if asyncio.iscoroutine(result):
        await result
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
            f"{r.events_published_per_s:,.0f} | {r.events_streamed_per_s:,.0f} | {ratio:.2f}x |"
        )
    return "\n".join(lines)


async def main(names: list[str], runs: int, words: int) -> None:
    results = []
    for name in names:
        infra = load_infra_from_config(INFRAS[name])
        results.append(await measure(name, infra, runs, words))
    print(f"{runs} runs x {words + 2} events each\n")
    print(report(results))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--words", type=int, default=20)
    parser.add_argument("--infra", action="append", choices=sorted(INFRAS), default=None)
    args = parser.parse_args()
    asyncio.run(main(args.infra or list(INFRAS), args.runs, args.words))
