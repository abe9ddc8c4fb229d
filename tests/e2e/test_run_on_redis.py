"""A run end to end on the Redis bus and the BullMQ queue, with the subscriber's connection killed
mid-run: the stream still delivers every seq once, repairing the gap from the store."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

from agents_run import (
    Infra,
    InMemoryRunStore,
    RunEvent,
    drain_outbox_for_run,
    register_agent,
    run_worker_once,
    start_run,
    stream_run,
)
from agents_run.adapters.bullmq_queue import BullMQQueue
from agents_run.adapters.redis_bus import RedisEventBus
from agents_run.application.infra import use_infra
from agents_run.domain.json_data import JsonObject
from agents_run.ports import QueueCounts
from tests.services import delete_redis_keys, kill_redis_connections, redis_url, unique_prefix

pytestmark = pytest.mark.deterministic

DEADLINE = 10.0


@pytest.fixture
async def redis_infra() -> AsyncIterator[Infra]:
    url = redis_url()
    prefix = unique_prefix("e2e")
    infra = Infra(
        bus=RedisEventBus(url, key_prefix=prefix, connect_timeout=2.0),
        queue=BullMQQueue(url, key_prefix=prefix, connect_timeout=2.0),
        store=InMemoryRunStore(),
    )
    with use_infra(infra):
        yield infra
    await infra.aclose()
    await delete_redis_keys(url, prefix)


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
    assert any(record.message.startswith("resubscribed to") for record in caplog.records)
