"""P6: the Redis bus (publish -> receive) and the BullMQ queue (enqueue, take + complete) against
raw redis-py and raw bullmq doing the same.

    .venv/bin/python -m benchmarks.p6_redis [--quick]

Bus: the outbox publisher's work: a batch of events published (``publish_batch``, as
``publish_pending_outbox_events_once`` sends a claimed batch) while one subscriber receives them
in order; the anchor sends the same JSON with one redis-py pipeline per batch to one raw Pub/Sub.
Queue: jobs enqueued one by one, then taken and completed one at a time; the anchor is bullmq's
own ``Queue.add`` and ``Worker.moveToActive`` + ``Job.moveToCompleted`` with the same options.
Needs Redis at AGENTS_RUN_TEST_REDIS_URL; every side has its own key prefix, deleted after.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import redis.asyncio as redis
from bullmq import Queue, Worker

from agents_run import RunEvent
from agents_run.adapters.bullmq_queue import BullMQQueue
from agents_run.adapters.redis_bus import RedisEventBus, channel_name
from agents_run.adapters.redis_connection import delete_keys
from benchmarks.measure import REDIS_URL, Figure, alternate_async, main, ratios

BATCH = 500


def _events(count: int) -> list[RunEvent]:
    return [
        RunEvent("bench-run", seq, "RunStep", {"text": f"word {seq}"})
        for seq in range(1, 1 + count)
    ]


async def bus_ours(count: int) -> float:
    prefix = f"bench-{uuid.uuid4().hex[:12]}"
    bus = RedisEventBus(REDIS_URL, key_prefix=prefix)
    try:
        subscription = await bus.subscribe("bench-run")
        events = _events(count)

        async def publish() -> None:
            for start in range(0, count, BATCH):
                await bus.publish_batch(events[start : start + BATCH])

        async def receive() -> None:
            for expected in events:
                if await subscription.next_event(10.0) != expected:
                    raise RuntimeError(f"lost or reordered: expected seq {expected.seq}")

        began = time.perf_counter()
        await asyncio.gather(receive(), publish())
        elapsed = time.perf_counter() - began
        await subscription.aclose()
    finally:
        await bus.aclose()
    return count / elapsed


async def bus_raw(count: int) -> float:
    channel = channel_name(f"bench-{uuid.uuid4().hex[:12]}", "bench-run")
    client = redis.Redis.from_url(REDIS_URL)
    pubsub = client.pubsub()
    try:
        await pubsub.subscribe(channel)
        while (await pubsub.get_message(timeout=5.0) or {}).get("type") != "subscribe":
            pass
        payloads = [event.to_json_text() for event in _events(count)]

        async def publish() -> None:
            for start in range(0, count, BATCH):
                async with client.pipeline(transaction=False) as pipe:
                    for payload in payloads[start : start + BATCH]:
                        pipe.publish(channel, payload)
                    await pipe.execute()

        async def receive() -> None:
            received = 0
            while received < count:
                message = await pubsub.get_message(timeout=10.0)
                if message is None:
                    raise RuntimeError("lost messages")
                if message["type"] == "message":
                    RunEvent.from_json_text(message["data"])  # as a subscriber must
                    received += 1

        began = time.perf_counter()
        await asyncio.gather(receive(), publish())
        elapsed = time.perf_counter() - began
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await client.aclose()
    return count / elapsed


async def queue_ours(jobs: int) -> tuple[float, float]:
    prefix = f"bench-{uuid.uuid4().hex[:12]}"
    queue = BullMQQueue(REDIS_URL, key_prefix=prefix)
    try:
        began = time.perf_counter()
        for n in range(jobs):
            await queue.enqueue(f"run-{n}")
        enqueued = time.perf_counter()
        for _ in range(jobs):
            job = await queue.take_next()
            if job is None:
                raise RuntimeError("a queued job was not handed out")
            await queue.complete(job)
        finished = time.perf_counter()
    finally:
        await queue.aclose()
        await delete_keys(REDIS_URL, prefix, connect_timeout=5.0)
    return jobs / (enqueued - began), jobs / (finished - enqueued)


async def queue_raw(jobs: int) -> tuple[float, float]:
    prefix = f"bench-{uuid.uuid4().hex[:12]}"
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    options = {"connection": client, "prefix": prefix}
    queue = Queue("bench", options)
    worker = Worker("bench", None, {**options, "autorun": False})
    job_options = {"removeOnComplete": {"age": 3600}, "stackTraceLimit": 0, "attempts": 10}
    try:
        began = time.perf_counter()
        for n in range(jobs):
            await queue.add("run", {"run_id": f"run-{n}"}, {**job_options, "jobId": f"run-{n}"})
        enqueued = time.perf_counter()
        for n in range(jobs):
            job = await worker.moveToActive(f"token-{n}")
            if job is None:
                raise RuntimeError("a queued job was not handed out")
            await job.moveToCompleted(None, job.token)
        finished = time.perf_counter()
    finally:
        await worker.close()
        await queue.close()
        await client.aclose()
        await delete_keys(REDIS_URL, prefix, connect_timeout=5.0)
    return jobs / (enqueued - began), jobs / (finished - enqueued)


async def _figures(quick: bool) -> list[Figure]:
    events, jobs, pairs = (2_000, 200, 2) if quick else (20_000, 2_000, 5)
    ours, raw = await alternate_async(pairs, lambda: bus_ours(events), lambda: bus_raw(events))
    queue_rates: list[list[tuple[float, float]]] = [[], []]
    for round_ in range(pairs):
        sides = [queue_ours, queue_raw] if round_ % 2 == 0 else [queue_raw, queue_ours]
        for side in sides:
            queue_rates[0 if side is queue_ours else 1].append(await side(jobs))
    (q_ours, q_raw) = queue_rates
    return [
        Figure(
            "P6",
            f"Redis bus publish -> receive, {events:,} events",
            f"raw redis-py, one pipeline per {BATCH} events",
            ratios(ours, raw),
            ">= 0.9x",
            limit=0.9,
            detail=f"{sorted(ours)[len(ours) // 2]:,.0f} vs {sorted(raw)[len(raw) // 2]:,.0f}/s",
        ),
        Figure(
            "P6",
            f"BullMQ enqueue, {jobs:,} jobs",
            "raw bullmq `Queue.add`",
            ratios([a for a, _ in q_ours], [a for a, _ in q_raw]),
            ">= 0.9x",
            limit=0.9,
            detail=f"{sorted(a for a, _ in q_raw)[pairs // 2]:,.0f} raw jobs/s",
        ),
        Figure(
            "P6",
            f"BullMQ take + complete, {jobs:,} jobs",
            "raw bullmq `moveToActive` + `moveToCompleted`",
            ratios([b for _, b in q_ours], [b for _, b in q_raw]),
            ">= 0.9x",
            limit=0.9,
            detail=f"{sorted(b for _, b in q_raw)[pairs // 2]:,.0f} raw jobs/s",
        ),
    ]


def figures(quick: bool) -> list[Figure]:
    return asyncio.run(_figures(quick))


if __name__ == "__main__":
    main(figures)
