"""RedisEventBus on the real server: what the contract suite cannot show, a dropped connection."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from agents_run import InfraUnavailable, RunEvent
from agents_run.adapters.redis_bus import RedisEventBus, channel_name
from tests.services import (
    delete_redis_keys,
    kill_redis_connections,
    redis_url,
    unique_prefix,
)
from tests.tcp_proxy import proxied

pytestmark = pytest.mark.deterministic

WAIT = 2.0


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
