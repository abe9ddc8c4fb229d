"""A run end to end on the Redis bus and the BullMQ queue, with the subscriber's connection killed
mid-run: the stream still delivers every seq once, repairing the gap from the store."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from agents_run import (
    Infra,
    InMemoryRunStore,
    RunEvent,
    drain_outbox_for_run,
    register_agent,
    run_until_idle,
    run_worker_once,
    start_run,
    stream_run,
)
from agents_run.adapters.bullmq_queue import BullMQQueue
from agents_run.adapters.redis_bus import RedisEventBus
from agents_run.adapters.redis_subscriber import DEFAULT_BUFFER_LIMIT
from agents_run.application.infra import use_infra
from agents_run.domain.json_data import JsonObject
from agents_run.ports import QueueCounts
from tests.services import (
    count_redis_connections,
    delete_redis_keys,
    kill_redis_connections,
    redis_url,
    unique_prefix,
)

pytestmark = pytest.mark.deterministic

DEADLINE = 10.0


@asynccontextmanager
async def open_redis_infra(*, buffer_limit: int = DEFAULT_BUFFER_LIMIT) -> AsyncIterator[Infra]:
    url = redis_url()
    prefix = unique_prefix("e2e")
    infra = Infra(
        bus=RedisEventBus(url, key_prefix=prefix, connect_timeout=2.0, buffer_limit=buffer_limit),
        queue=BullMQQueue(url, key_prefix=prefix, connect_timeout=2.0),
        store=InMemoryRunStore(),
    )
    with use_infra(infra):
        yield infra
    await infra.aclose()
    await delete_redis_keys(url, prefix)


@pytest.fixture
async def redis_infra() -> AsyncIterator[Infra]:
    async with open_redis_infra() as infra:
        yield infra


async def collect(run_id: str) -> list[RunEvent]:
    return [event async for event in stream_run(run_id, idle_timeout=DEADLINE)]


async def until_subscribed(bus: RedisEventBus, count: int) -> None:
    async with asyncio.timeout(DEADLINE):
        while len(bus.open_subscriptions()) < count:  # noqa: ASYNC110 - the bus offers no event
            await asyncio.sleep(0.01)


async def test_a_stream_survives_a_killed_subscription_with_every_seq_once(
    redis_infra: Infra, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="agents_run.redis_bus")
    assert isinstance(redis_infra.bus, RedisEventBus)
    halfway, resume = asyncio.Event(), asyncio.Event()

    @register_agent("pauses-halfway")
    async def agent(input: JsonObject) -> AsyncIterator[JsonObject]:
        for word in ("one", "two"):
            yield {"text": word}
        halfway.set()
        await resume.wait()
        for word in ("three", "four"):
            yield {"text": word}

    received: list[RunEvent] = []
    first_half_received = asyncio.Event()

    async def follow(run_id: str) -> None:
        async for event in stream_run(run_id, poll_interval=0.2, idle_timeout=DEADLINE):
            received.append(event)
            if len(received) == 3:
                first_half_received.set()

    async with asyncio.timeout(DEADLINE):
        run_id = await start_run("pauses-halfway", {})
        stream = asyncio.create_task(follow(run_id))
        worker = asyncio.create_task(run_worker_once())
        await halfway.wait()
        assert await drain_outbox_for_run(run_id) == 3
        await first_half_received.wait()

        bus = redis_infra.bus
        assert await kill_redis_connections(bus.url, bus.client_name, pubsub=True) == 1
        while bus.subscriber.last_error is None:  # noqa: ASYNC110 - the bus offers no event
            await asyncio.sleep(0.01)  # the subscriber saw its connection go: the rest is a gap
        resume.set()
        assert await worker is True
        assert await drain_outbox_for_run(run_id) == 3  # published while resubscribing
        await stream

    assert [(e.seq, e.type) for e in received] == [
        (1, "RunStarted"),
        (2, "RunStep"),
        (3, "RunStep"),
        (4, "RunStep"),
        (5, "RunStep"),
        (6, "RunFinished"),
    ]
    assert await redis_infra.queue.counts() == QueueCounts(waiting=0, active=0)
    # Not "resubscribed to": the stream may end from the store before the subscriber is back,
    # and its close then stops the reconnection (tests/integration/test_redis_bus.py has that).
    assert any(record.message.startswith("lost or cannot") for record in caplog.records)


async def test_150_concurrent_streams_share_one_subscriber_connection_each_seq_once(
    redis_infra: Infra,
) -> None:
    bus = redis_infra.bus
    assert isinstance(bus, RedisEventBus)
    runs = [await start_run("echo", {"text": f"run {n}"}) for n in range(150)]
    streams = [asyncio.create_task(collect(run_id)) for run_id in runs]
    await until_subscribed(bus, len(runs))  # every stream is live before anything runs
    assert await count_redis_connections(bus.url, bus.client_name, pubsub=True) == 1

    async with asyncio.timeout(DEADLINE * 3):
        await run_until_idle()
        streamed = await asyncio.gather(*streams)
    for n, events in enumerate(streamed):
        assert [(e.seq, e.type, e.data.get("text")) for e in events] == [
            (1, "RunStarted", None),
            (2, "RunStep", "run"),
            (3, "RunStep", str(n)),
            (4, "RunFinished", None),
        ]
    assert await count_redis_connections(bus.url, bus.client_name, pubsub=True) == 0


async def test_a_stream_that_falls_behind_the_bus_gets_the_rest_from_the_store_once() -> None:
    async with open_redis_infra(buffer_limit=2) as infra:
        assert isinstance(infra.bus, RedisEventBus)
        reading = asyncio.Event()
        received: list[RunEvent] = []

        async def slow_reader(run_id: str) -> None:
            # A poll interval this long leaves only the bus's "fell behind" to trigger repair.
            async for event in stream_run(run_id, poll_interval=DEADLINE, idle_timeout=DEADLINE):
                received.append(event)
                await reading.wait()

        async with asyncio.timeout(DEADLINE):
            run_id = await start_run("echo", {"text": "a b c d e f g h"})
            reader = asyncio.create_task(slow_reader(run_id))
            await until_subscribed(infra.bus, 1)
            assert await run_worker_once() is True
            assert await drain_outbox_for_run(run_id) == 10
            while infra.bus.subscriber.fell_behind == 0:  # noqa: ASYNC110 - no event to wait on
                await asyncio.sleep(0.01)
            reading.set()
            await reader
    assert [event.seq for event in received] == list(range(1, 11))
