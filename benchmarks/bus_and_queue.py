"""Throughput of the bus and queue adapters, in-memory beside Redis/BullMQ.

Run from the repository root, with Redis on AGENTS_RUN_TEST_REDIS_URL (default 127.0.0.1:6379):

    .venv/bin/python -m benchmarks.bus_and_queue [--events N] [--jobs N]

Each Redis measurement uses its own key prefix and deletes its keys afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from tests.services import delete_redis_keys, redis_url, unique_prefix

from agents_run import InMemoryEventBus, InMemoryQueue, RunEvent
from agents_run.adapters.bullmq_queue import BullMQQueue
from agents_run.adapters.redis_bus import RedisEventBus
from agents_run.ports import EventBusPort, QueuePort


async def bus_round_trips(bus: EventBusPort, events: int) -> float:
    """Events per second published and received by one subscriber, publisher and reader together."""
    subscription = await bus.subscribe("bench-run")
    batch = [
        RunEvent("bench-run", seq, "RunStep", {"text": f"word {seq}"})
        for seq in range(1, 1 + events)
    ]

    async def publish_all() -> None:
        for event in batch:
            await bus.publish(event)

    async def receive_all() -> None:
        for expected in batch:
            if await subscription.next_event(5.0) != expected:
                raise RuntimeError(f"lost or reordered event: expected seq {expected.seq}")

    started = time.perf_counter()
    await asyncio.gather(receive_all(), publish_all())
    elapsed = time.perf_counter() - started
    await subscription.aclose()
    return events / elapsed


async def queue_cycles(queue: QueuePort, jobs: int) -> dict[str, float]:
    """Per second: enqueue all, then take and complete all, one at a time."""
    runs = [f"bench-run-{n}" for n in range(jobs)]
    started = time.perf_counter()
    for run in runs:
        await queue.enqueue(run)
    enqueued = time.perf_counter()
    for _ in runs:
        job = await queue.take_next()
        if job is None:
            raise RuntimeError("a queued job was not handed out")
        await queue.complete(job)
    finished = time.perf_counter()
    return {
        "enqueue/s": jobs / (enqueued - started),
        "take+complete/s": jobs / (finished - enqueued),
    }


async def main(events: int, jobs: int) -> None:
    url = redis_url()
    print(f"bus, {events} events, publish + receive by one subscriber (events/s)")
    print(f"  memory: {await bus_round_trips(InMemoryEventBus(), events):>10,.0f}")
    prefix = unique_prefix("bench")
    redis_bus = RedisEventBus(url, key_prefix=prefix)
    try:
        print(f"  redis:  {await bus_round_trips(redis_bus, events):>10,.0f}")
    finally:
        await redis_bus.aclose()
        await delete_redis_keys(url, prefix)

    print(f"queue, {jobs} jobs, one at a time (per second)")
    print(f"  memory: {_rates(await queue_cycles(InMemoryQueue(), jobs))}")
    prefix = unique_prefix("bench")
    bullmq = BullMQQueue(url, key_prefix=prefix)
    try:
        print(f"  bullmq: {_rates(await queue_cycles(bullmq, jobs))}")
    finally:
        await bullmq.aclose()
        await delete_redis_keys(url, prefix)


def _rates(rates: dict[str, float]) -> str:
    return ", ".join(f"{name} {rate:>10,.0f}" for name, rate in rates.items())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--jobs", type=int, default=2_000)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.events, arguments.jobs))
