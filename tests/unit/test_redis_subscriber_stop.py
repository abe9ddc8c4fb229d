"""The shared Redis subscriber stopped while its SUBSCRIBE is in flight: closing the last
subscription returns, and the reader ends, even where the library swallowed the cancellation."""

from __future__ import annotations

import asyncio
from typing import cast

import pytest
from redis.asyncio import Redis

from agents_run.adapters.redis_subscriber import RedisSubscription, SharedSubscriber
from tests.unit.mocks.absorbing_pubsub import AbsorbingClient

pytestmark = pytest.mark.deterministic

NO_HANG = 30.0  # a guard only: the reader used to go on for keepalive_interval (an hour here)


async def test_a_subscriber_stopped_mid_subscribe_whose_cancel_is_swallowed_still_stops() -> None:
    client = AbsorbingClient()
    subscriber = SharedSubscriber(
        cast(Redis, client), connect_timeout=NO_HANG, buffer_limit=10, keepalive_interval=3600.0
    )
    subscription = RedisSubscription(subscriber, "run-1", "p:run:run-1:events")
    loop = asyncio.get_running_loop()
    adding = asyncio.create_task(subscriber.add(subscription, loop.time() + NO_HANG))
    reader = None
    async with asyncio.timeout(NO_HANG):
        await client.subscribing.wait()
        reader = subscriber._reader  # the task whose end is the point
        adding.cancel()  # the stream gives up: its subscription is removed, the reader stopped
        await asyncio.wait([adding])
        assert reader is not None
        await asyncio.wait([reader])
    assert client.absorbed == 1
    assert client.messages_read == 0  # it never went on to read a connection nobody listens to
    assert subscriber.subscriptions() == []
