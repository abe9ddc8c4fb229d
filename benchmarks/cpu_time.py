"""P5 and P8 in this process's CPU seconds, for a machine too loaded for wall-clock ratios:
CPU time counts only the work done here, not the time other processes took the cores.

    .venv/bin/python -m benchmarks.cpu_time [--rounds 7] [--gc-off]

P5: CPU seconds of 2,000 in-memory runs (the harness of ``p5_in_memory``) against the minimal
pipeline. P8: CPU microseconds per event of ``read_events`` and ``stream_run`` of a whole run of
1,000 and of 100,000 events on PostgreSQL (the client's share only: the server's is not
counted). ``--gc-off``: P8 with the cyclic garbage collector disabled around each read, to see
its share. To compare two versions of the code, run it in each (``PYTHONPATH`` first).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import time
from collections.abc import Callable, Coroutine
from typing import Any

from agents_run import Infra, InMemoryEventBus, InMemoryQueue, stream_run, use_infra
from benchmarks.p5_in_memory import harness, pipeline
from benchmarks.p7_postgres import AT, fresh_schema, seed, started_run


def cpu_seconds(work: Callable[[], Coroutine[Any, Any, object]]) -> float:
    began = time.process_time()
    asyncio.run(work())
    return time.process_time() - began


def p5(rounds: int) -> None:
    ours = [cpu_seconds(lambda: harness(2000)) for _ in range(rounds)]
    theirs = [cpu_seconds(lambda: pipeline(2000)) for _ in range(rounds)]
    print(
        f"P5 harness: {statistics.median(ours):.3f} CPU s for 20,000 events (spread "
        f"{min(ours):.3f} to {max(ours):.3f}); pipeline {statistics.median(theirs):.3f} CPU s"
    )


async def _p8(rounds: int, gc_off: bool) -> None:
    async with fresh_schema() as (store, schema):
        runs = {}
        for size in (1_000, 100_000):
            runs[size] = await started_run(store)
            await seed(schema, runs[size], size)
            await store.append_event(runs[size], "RunFinished", {}, at=AT)
        infra = Infra(bus=InMemoryEventBus(), queue=InMemoryQueue(), store=store)
        for size, run_id in runs.items():
            for what in ("backfill", "stream"):
                costs = []
                for _ in range(rounds):
                    if gc_off:
                        gc.disable()
                    began = time.process_time()
                    if what == "backfill":
                        count = len(await store.read_events(run_id))
                    else:
                        with use_infra(infra):
                            count = sum([1 async for _ in stream_run(run_id)])
                    costs.append((time.process_time() - began) / count * 1e6)
                    gc.enable()
                print(
                    f"P8 {what} of {size:,} events: {statistics.median(costs):.2f} CPU us an "
                    f"event (spread {min(costs):.2f} to {max(costs):.2f})"
                )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--gc-off", action="store_true", help="P8 without the cyclic collector")
    arguments = parser.parse_args()
    if not arguments.gc_off:
        p5(arguments.rounds)
    asyncio.run(_p8(arguments.rounds, arguments.gc_off))
