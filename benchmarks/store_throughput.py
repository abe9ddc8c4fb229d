"""Run store throughput, side by side: memory, SQLite and PostgreSQL.

    .venv/bin/python -m benchmarks.store_throughput [--events N] [--stores memory,sqlite,postgres]

Measures, on fresh storage (tests/contract/storages.py: a temporary SQLite file, a temporary
PostgreSQL schema at AGENTS_RUN_TEST_POSTGRES_URL):
- appends to one run, one after another (each is a transaction with its outbox row);
- appends to 20 runs from 10 concurrent tasks (bounded, as PITFALLS.md advises);
- publishing: claiming batches of 500 and marking them one row at a time (as
  ``publish_pending_outbox_events_once`` does) versus the whole batch in one call;
- wake-up latency: from the start of an append to ``wait_for_outbox`` returning on another
  store handle (its own connections, as another process has); the append's own time included.
Results go to stdout as a Markdown table; the numbers are this machine's, not a promise.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from tests.contract.storages import STORAGES

from agents_run import RunStatus
from agents_run.domain.events import Run
from agents_run.ports import RunStorePort

AT = datetime(2026, 1, 1, tzinfo=UTC)


async def started_runs(store: RunStorePort, count: int) -> list[str]:
    ids = []
    for _ in range(count):
        run = Run(f"run-{uuid.uuid4().hex}", "echo", {}, RunStatus.QUEUED, AT, AT)
        await store.create_run(run)
        await store.append_event(run.id, "RunStarted", {}, at=AT)
        ids.append(run.id)
    return ids


async def timed(work: Callable[[], Awaitable[None]]) -> float:
    start = time.perf_counter()
    await work()
    return time.perf_counter() - start


async def append_one_run(store: RunStorePort, events: int) -> float:
    (run_id,) = await started_runs(store, 1)

    async def work() -> None:
        for i in range(events):
            await store.append_event(run_id, "RunStep", {"text": f"word {i}"}, at=AT)

    return events / await timed(work)


async def append_many_runs(store: RunStorePort, events: int) -> float:
    run_ids = await started_runs(store, 20)
    per_task = events // 10

    async def task(index: int) -> None:
        for i in range(per_task):
            run_id = run_ids[(index + i) % len(run_ids)]
            await store.append_event(run_id, "RunStep", {"text": f"word {i}"}, at=AT)

    async def work() -> None:
        await asyncio.gather(*(task(index) for index in range(10)))

    return per_task * 10 / await timed(work)


async def publish(store: RunStorePort, row_by_row: bool) -> float:
    published = 0

    async def work() -> None:
        nonlocal published
        while True:
            async with store.claim_outbox(limit=500) as claim:
                if not claim.rows:
                    return
                if row_by_row:
                    for row in claim.rows:
                        await claim.mark_published([row])
                else:
                    await claim.mark_published(claim.rows)
                published += len(claim.rows)

    seconds = await timed(work)
    return published / seconds


async def wake_up_latency_ms(publisher: RunStorePort, worker: RunStorePort) -> float:
    (run_id,) = await started_runs(worker, 1)
    while await publisher.wait_for_outbox(0.05):
        pass
    latencies = []
    for i in range(30):
        woken_at: list[float] = []

        async def wait(woken_at: list[float] = woken_at) -> None:
            if await publisher.wait_for_outbox(5.0):
                woken_at.append(time.perf_counter())

        waiter = asyncio.create_task(wait())
        await asyncio.sleep(0.01)  # the publisher is waiting
        appending_at = time.perf_counter()
        await worker.append_event(run_id, "RunStep", {"i": i}, at=AT)
        await waiter
        latencies.append((woken_at[0] - appending_at) * 1000 if woken_at else float("nan"))
    return statistics.median(latencies)


async def measure(name: str, events: int) -> dict[str, float]:
    results: dict[str, float] = {}
    async with STORAGES[name]() as open_store:
        store = open_store()
        results["append, 1 run (events/s)"] = await append_one_run(store, events)
        results["append, 20 runs x 10 tasks (events/s)"] = await append_many_runs(store, events)
        results["publish, mark per row (rows/s)"] = await publish(store, row_by_row=True)
    async with STORAGES[name]() as open_store:
        store = open_store()
        await append_one_run(store, events)
        results["publish, mark per batch (rows/s)"] = await publish(store, row_by_row=False)
        results["wake-up latency, other handle, median (ms)"] = await wake_up_latency_ms(
            open_store(), open_store()
        )
    return results


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--stores", default="memory,sqlite,postgres")
    args = parser.parse_args()
    names = [name for name in args.stores.split(",") if name]
    table = {name: await measure(name, args.events) for name in names}
    metrics = list(next(iter(table.values())))
    print(f"| {args.events} events | " + " | ".join(names) + " |")
    print("|---|" + "---:|" * len(names))
    for metric in metrics:
        cells = " | ".join(f"{table[name][metric]:,.1f}" for name in names)
        print(f"| {metric} | {cells} |")


if __name__ == "__main__":
    asyncio.run(main())
