"""RedisEventBus on the real server: what the contract suite cannot show, a dropped connection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from agents_run import InfraUnavailable, RunEvent
from agents_run.adapters.bullmq_queue import BullMQQueue
from agents_run.adapters.redis_bus import RedisEventBus, channel_name
from agents_run.ports import QueueCounts
from tests.services import (
    count_redis_connections,
    delete_redis_keys,
    kill_redis_connections,
    redis_url,
    unique_prefix,
)
from tests.tcp_proxy import proxied

pytestmark = pytest.mark.deterministic

WAIT = 2.0


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(10 * WAIT):
        while not condition():  # noqa: ASYNC110 - the subscriber offers no event to wait on
            await asyncio.sleep(0.01)


def step(seq: int) -> RunEvent:
    return RunEvent(run_id="run-1", seq=seq, type="RunStep", data={"n": seq})


@pytest.fixture
async def bus() -> AsyncIterator[RedisEventBus]:
    url = redis_url()
    prefix = unique_prefix("bus")
    adapter = RedisEventBus(url, key_prefix=prefix, connect_timeout=2.0)
    yield adapter
    await adapter.aclose()
    await delete_redis_keys(url, prefix)


def test_each_run_has_its_own_channel_under_the_key_prefix() -> None:
    assert channel_name("agents-run", "run-7") == "agents-run:run:run-7:events"


async def test_a_subscription_whose_connection_drops_resubscribes_and_says_so_once(
    bus: RedisEventBus,
) -> None:
    subscription = await bus.subscribe("run-1")
    await bus.publish(step(1))
    assert await subscription.next_event(WAIT) == step(1)

    assert await kill_redis_connections(bus.url, bus.client_name, pubsub=True) == 1
    await bus.publish(step(2))  # nobody is subscribed now: pub/sub drops it

    # None tells stream_run to re-read the store, which holds seq 2.
    assert await subscription.next_event(WAIT) is None
    await bus.publish(step(3))
    assert await subscription.next_event(WAIT) == step(3)
    assert await subscription.next_event(0.1) is None
    await subscription.aclose()


async def test_a_subscription_outlives_an_outage_and_resumes_when_the_server_is_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = redis_url()
    prefix = unique_prefix("bus")
    async with proxied(url) as (proxy, proxied_url):
        bus = RedisEventBus(proxied_url, key_prefix=prefix, connect_timeout=1)
        try:
            subscription = await bus.subscribe("run-1")
            await proxy.stop()  # the server is gone for everyone

            assert await subscription.next_event(0.2) is None  # no error: streams poll the store
            assert await subscription.next_event(0.2) is None
            assert "cannot resubscribe" in caplog.text
            with pytest.raises(InfraUnavailable, match="did not answer while publishing"):
                await bus.publish(step(1))

            await proxy.start()  # the server is back
            assert await subscription.next_event(WAIT) is None  # resubscribed: maybe a gap
            await bus.publish(step(2))
            assert await subscription.next_event(WAIT) == step(2)
            await subscription.aclose()
        finally:
            await bus.aclose()
            await delete_redis_keys(url, prefix)


async def test_a_publish_on_a_dropped_pooled_connection_is_retried(bus: RedisEventBus) -> None:
    subscription = await bus.subscribe("run-1")
    await bus.publish(step(1))
    assert await kill_redis_connections(bus.url, bus.client_name, pubsub=False) >= 1
    await bus.publish(step(2))
    assert [await subscription.next_event(WAIT) for _ in range(2)] == [step(1), step(2)]
    await subscription.aclose()


async def test_a_malformed_message_on_the_channel_is_skipped(bus: RedisEventBus) -> None:
    subscription = await bus.subscribe("run-1")
    await bus.client.publish(channel_name(bus.key_prefix, "run-1"), b"not json")
    await bus.publish(step(1))
    assert await subscription.next_event(WAIT) == step(1)
    await subscription.aclose()


async def test_subscriptions_to_many_runs_share_one_connection_closed_with_the_last_of_them(
    bus: RedisEventBus,
) -> None:
    runs = [f"run-{n}" for n in range(150)]  # more than redis-py's pool of 100 connections
    subscriptions = await asyncio.gather(*(bus.subscribe(run) for run in runs))
    subscriptions.append(await bus.subscribe(runs[0]))  # a second stream of one run
    assert await count_redis_connections(bus.url, bus.client_name, pubsub=True) == 1

    for run in runs:
        await bus.publish(RunEvent(run_id=run, seq=1, type="RunStep", data={"run": run}))
    for subscription in subscriptions:
        event = await subscription.next_event(WAIT)
        assert event == RunEvent(subscription.run_id, 1, "RunStep", {"run": subscription.run_id})
        assert await subscription.next_event(0) is None

    for subscription in subscriptions:
        await subscription.aclose()
    assert await count_redis_connections(bus.url, bus.client_name, pubsub=True) == 0
    assert bus.subscriber.connections_opened == 1


async def test_a_run_is_subscribed_on_the_server_once_until_its_last_subscription_closes(
    bus: RedisEventBus,
) -> None:
    async def server_subscribers(run_id: str) -> int:
        [(_, count)] = await bus.client.pubsub_numsub(channel_name(bus.key_prefix, run_id))
        return int(count)

    async def unsubscribed_on_the_server(run_id: str) -> bool:
        # UNSUBSCRIBE is written on the subscriber's connection, NUMSUB asked on another: the
        # server may answer the second first, so give it a bounded moment.
        async with asyncio.timeout(WAIT):
            while await server_subscribers(run_id) != 0:  # noqa: ASYNC110 - polls the server
                await asyncio.sleep(0.01)
        return True

    first, second, other = [await bus.subscribe(run) for run in ("run-1", "run-1", "run-2")]
    assert await server_subscribers("run-1") == 1
    await first.aclose()
    assert await server_subscribers("run-1") == 1
    await second.aclose()
    assert await unsubscribed_on_the_server("run-1")
    assert await server_subscribers("run-2") == 1
    await other.aclose()


async def test_a_subscription_that_falls_behind_is_told_once_and_holds_no_other_back() -> None:
    url = redis_url()
    prefix = unique_prefix("bus")
    bus = RedisEventBus(url, key_prefix=prefix, connect_timeout=2.0, buffer_limit=5)
    try:
        slow, fast = await bus.subscribe("run-1"), await bus.subscribe("run-1")
        events = [step(seq) for seq in range(1, 21)]
        for event in events:  # one reader keeps up while the other reads nothing
            await bus.publish(event)
            assert await fast.next_event(WAIT) == event

        # It held at most 5 events: it drops them and says so, then goes on with the newest.
        assert bus.subscriber.fell_behind == 3
        assert await slow.next_event(WAIT) is None
        assert [await slow.next_event(WAIT) for _ in range(5)] == events[15:]
        assert await slow.next_event(0.1) is None
        await slow.aclose()
        await fast.aclose()
    finally:
        await bus.aclose()
        await delete_redis_keys(url, prefix)


async def test_a_dropped_connection_resubscribes_every_live_run_each_told_once(
    bus: RedisEventBus,
) -> None:
    subscriptions = [await bus.subscribe(f"run-{n}") for n in range(3)]
    assert await kill_redis_connections(bus.url, bus.client_name, pubsub=True) == 1

    for subscription in subscriptions:
        assert await subscription.next_event(WAIT) is None  # back, and maybe with a gap
    for subscription in subscriptions:
        event = RunEvent(run_id=subscription.run_id, seq=2, type="RunStep")
        await bus.publish(event)
        assert await subscription.next_event(WAIT) == event
        assert await subscription.next_event(0) is None
    assert await count_redis_connections(bus.url, bus.client_name, pubsub=True) == 1
    for subscription in subscriptions:
        await subscription.aclose()


async def test_many_subscriptions_closing_at_once_close_cleanly(bus: RedisEventBus) -> None:
    for _ in range(3):
        subscriptions = await asyncio.gather(*(bus.subscribe(f"run-{n}") for n in range(50)))
        await asyncio.gather(*(subscription.aclose() for subscription in subscriptions))
        assert bus.open_subscriptions() == []
        assert await count_redis_connections(bus.url, bus.client_name, pubsub=True) == 0


async def test_a_connection_that_goes_silent_is_pinged_then_replaced(
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = redis_url()
    prefix = unique_prefix("bus")
    async with proxied(url) as (proxy, proxied_url):
        bus = RedisEventBus(
            proxied_url, key_prefix=prefix, connect_timeout=0.5, keepalive_interval=0.1
        )
        try:
            subscription = await bus.subscribe("run-1")
            proxy.blackhole = True  # nothing arrives, nothing is closed: only a PING can tell
            await until(lambda: bus.subscriber.connections_opened >= 2)  # gave up on the first
            assert "no answer to PING" in caplog.text
            assert not bus.subscriber.listening

            proxy.blackhole = False
            await until(lambda: bus.subscriber.listening)
            assert await subscription.next_event(WAIT) is None  # back, and maybe with a gap
            await bus.publish(step(2))
            assert await subscription.next_event(WAIT) == step(2)
            await subscription.aclose()
        finally:
            await bus.aclose()
            await delete_redis_keys(url, prefix)


async def test_two_prefixes_never_see_each_others_runs() -> None:
    url = redis_url()
    outer = unique_prefix("bus")
    buses = [RedisEventBus(url, key_prefix=p, connect_timeout=2.0) for p in (outer, f"{outer}:b")]
    queues = [BullMQQueue(url, key_prefix=p, connect_timeout=2.0) for p in (outer, f"{outer}:b")]
    try:
        watching = await buses[0].subscribe("run-1")
        inner_watching = await buses[1].subscribe("run-1")
        await buses[1].publish(step(1))
        await queues[1].enqueue("run-1")
        assert await inner_watching.next_event(timeout=WAIT) == step(1)  # it did go out
        assert await watching.next_event(timeout=0.2) is None  # not to the other prefix
        assert await queues[0].counts() == QueueCounts(waiting=0, active=0)
        assert await queues[0].take_next() is None
        assert await queues[1].counts() == QueueCounts(waiting=1, active=0)
        await watching.aclose()
        await inner_watching.aclose()
    finally:
        for bus in buses:
            await bus.aclose()
        for queue in queues:
            await queue.aclose()
        await delete_redis_keys(url, outer)
        await delete_redis_keys(url, f"{outer}:b")
