"""P8: the per-event cost of append, backfill and streaming as a run grows from 1,000 to
100,000 events, against the same at 1,000, on the PostgreSQL store (the one that grows on disk).

    .venv/bin/python -m benchmarks.p8_growth [--quick]

For each size a run is grown to that many events at once, then measured: 200 appends one after
another, a backfill of the whole run (``read_events``), and ``stream_run`` of the whole run to
its end (PostgreSQL store, in-memory bus and queue). A ratio is the per-event time at that size
over the per-event time at the smallest size: 1.00x is flat.
"""

from __future__ import annotations

import asyncio
import time

from agents_run import Infra, InMemoryEventBus, InMemoryQueue, stream_run, use_infra
from benchmarks.measure import Figure, main
from benchmarks.p7_postgres import AT, fresh_schema, seed, started_run

APPENDS = 200


async def per_event_seconds(size: int) -> dict[str, float]:
    async with fresh_schema() as (store, schema):
        run_id = await started_run(store)
        await seed(schema, run_id, size)
        began = time.perf_counter()
        for i in range(APPENDS):
            await store.append_event(run_id, "RunStep", {"text": f"w{i}"}, at=AT)
        appended = time.perf_counter()
        events = await store.read_events(run_id)
        read = time.perf_counter()
        await store.append_event(run_id, "RunFinished", {}, at=AT)
        infra = Infra(bus=InMemoryEventBus(), queue=InMemoryQueue(), store=store)
        streamed = 0
        with use_infra(infra):
            stream_began = time.perf_counter()
            async for _ in stream_run(run_id):
                streamed += 1
            stream_ended = time.perf_counter()
    return {
        "append": (appended - began) / APPENDS,
        "backfill": (read - appended) / len(events),
        "stream": (stream_ended - stream_began) / streamed,
    }


async def _figures(quick: bool) -> list[Figure]:
    sizes, rounds = ([1_000, 10_000], 1) if quick else ([1_000, 10_000, 100_000], 3)
    costs: dict[int, list[dict[str, float]]] = {size: [] for size in sizes}
    for _ in range(rounds):
        for size in sizes:
            costs[size].append(await per_event_seconds(size))
    base = sizes[0]
    figures = []
    for measure in ("append", "backfill", "stream"):
        for size in sizes[1:]:
            ratios = [
                grown[measure] / small[measure]
                for grown, small in zip(costs[size], costs[base], strict=True)
            ]
            micro = sorted(c[measure] for c in costs[size])[rounds // 2] * 1e6
            figures.append(
                Figure(
                    "P8",
                    f"per-event {measure} at {size:,} events (PostgreSQL)",
                    f"itself at {base:,}",
                    ratios,
                    "flat (within noise)",
                    higher_is_better=False,
                    detail=f"{micro:,.1f} us an event",
                )
            )
    return figures


def figures(quick: bool) -> list[Figure]:
    return asyncio.run(_figures(quick))


if __name__ == "__main__":
    main(figures)
