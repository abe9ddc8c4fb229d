"""A worker cut off from Redis for longer than its BullMQ lock, while PostgreSQL still takes its
appends and renewals, keeps its run: the queue hands the job to another worker, which finds the
run's lease live in the store and leaves the run alone; the first worker finishes it."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from agents_run import Infra, RunContext, register_agent, run_worker_once, start_run
from agents_run.adapters.bullmq_queue import BullMQQueue
from agents_run.adapters.memory import InMemoryEventBus
from agents_run.adapters.postgres_store import PostgresRunStore
from agents_run.application.agents import unregister_agent
from agents_run.application.infra import use_infra
from agents_run.domain.json_data import JsonObject
from agents_run.ports import QueueCounts
from tests.services import delete_redis_keys, postgres_url, redis_url, unique_prefix
from tests.tcp_proxy import proxied

LOCK_MS = 300  # BullMQ's lock, shrunk from 30 s: what matters is that it lapses, not how long
STALLED_INTERVAL_MS = 50
DEADLINE = 30.0
AGENT = "steps-when-told"


@pytest.fixture
def told() -> Iterator[asyncio.Queue[None]]:
    """An agent that takes one step each time the test puts into the queue, three in all."""
    go: asyncio.Queue[None] = asyncio.Queue()

    @register_agent(AGENT)
    async def agent(input: JsonObject, ctx: RunContext) -> AsyncIterator[JsonObject]:
        for step in range(3):
            await go.get()
            yield {"step": step}

    yield go
    unregister_agent(AGENT)


async def test_a_worker_cut_off_from_redis_past_its_lock_keeps_its_run_and_finishes_it(
    told: asyncio.Queue[None], caplog: pytest.LogCaptureFixture
) -> None:
    prefix = unique_prefix("cut-off")
    store = PostgresRunStore(postgres_url(), schema=f"t_cut_{uuid.uuid4().hex[:12]}")
    await store.create_schema()
    queues: list[BullMQQueue] = []

    def queue_on(url: str) -> BullMQQueue:
        queues.append(
            BullMQQueue(
                url,
                key_prefix=prefix,
                lock_duration_ms=LOCK_MS,
                stalled_interval_ms=STALLED_INTERVAL_MS,
            )
        )
        return queues[-1]

    def infra_on(queue: BullMQQueue) -> Infra:
        return Infra(bus=InMemoryEventBus(), queue=queue, store=store)

    async def stored(run_id: str, seq: int) -> None:
        async with asyncio.timeout(DEADLINE):
            while not await store.read_events(run_id, seq, limit=1):  # noqa: ASYNC110
                await asyncio.sleep(0.02)

    try:
        async with proxied(redis_url()) as (proxy, proxied_url):
            cut_off, other = infra_on(queue_on(proxied_url)), infra_on(queue_on(redis_url()))
            with use_infra(cut_off):
                run_id = await start_run(AGENT, {})
                working = asyncio.create_task(run_worker_once())
                told.put_nowait(None)
                await stored(run_id, 2)  # RunStarted, then step 0
            await proxy.stop()  # its lock renewals no longer reach Redis

            with use_infra(other), caplog.at_level(logging.INFO, logger="agents_run"):
                async with asyncio.timeout(DEADLINE):
                    while not await other.queue.recover_stalled():  # noqa: ASYNC110
                        await asyncio.sleep(STALLED_INTERVAL_MS / 1000)
                assert await run_worker_once() is True  # the job again, attempt 2...
            assert f"run {run_id} is held by a live worker" in caplog.text  # ...left alone
            assert (await store.get_run(run_id)).attempt == 1

            told.put_nowait(None)
            await stored(run_id, 3)  # still cut off from Redis: the store takes its steps
            await proxy.start()
            told.put_nowait(None)
            assert await asyncio.wait_for(working, DEADLINE) is True
        events = await store.read_events(run_id)
        assert [(e.type, e.data.get("step")) for e in events] == [
            ("RunStarted", None),
            ("RunStep", 0),
            ("RunStep", 1),
            ("RunStep", 2),
            ("RunFinished", None),
        ]
        assert (await store.get_run(run_id)).attempt == 1
        assert await other.queue.counts() == QueueCounts(waiting=0, active=0)
    finally:
        for queue in queues:
            await queue.aclose()
        await delete_redis_keys(redis_url(), prefix)
        await store.drop_schema()
        await store.aclose()
