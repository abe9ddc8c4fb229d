"""The event bus on Redis Pub/Sub: one channel per run, JSON payloads.

Publishing uses the client's pool; every subscription of a bus shares one Pub/Sub connection
(``redis_subscriber``), so a process can stream thousands of runs at once.

Pub/Sub is at-most-once: a subscriber whose connection drops misses what was published meanwhile.
The shared connection is reopened by itself; each subscription then answers ``None`` once, which
tells ``stream_run`` to re-read the store, the source of truth, so the gap is repaired there. A
subscription that falls too far behind answers ``None`` once in the same way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from agents_run.adapters.redis_connection import CONNECTION_ERRORS, open_redis, unavailable
from agents_run.adapters.redis_subscriber import (
    DEFAULT_BUFFER_LIMIT,
    DEFAULT_KEEPALIVE_INTERVAL,
    RedisSubscription,
    SharedSubscriber,
)
from agents_run.arguments import require_seconds
from agents_run.domain.events import RunEvent

__all__ = ["RedisEventBus", "RedisSubscription", "channel_name"]


def channel_name(key_prefix: str, run_id: str) -> str:
    return f"{key_prefix}:run:{run_id}:events"


class RedisEventBus:
    """Publishes each run's events to ``{key_prefix}:run:{run_id}:events``.

    Construction does no I/O; a server that does not answer raises ``InfraUnavailable`` from
    ``publish`` or ``subscribe`` within ``connect_timeout`` seconds (a publish is tried twice).
    ``buffer_limit``: how many events a subscription holds for a reader slower than the
    publisher before it drops them and answers ``None`` (its stream re-reads the store).
    ``keepalive_interval``: after this many seconds without a message the subscriber connection
    is PINGed, and reopened where no answer comes within ``connect_timeout``.
    """

    def __init__(
        self,
        url: str,
        *,
        key_prefix: str,
        connect_timeout: float = 5.0,
        buffer_limit: int = DEFAULT_BUFFER_LIMIT,
        keepalive_interval: float = DEFAULT_KEEPALIVE_INTERVAL,
    ) -> None:
        require_seconds(connect_timeout, "connect_timeout", positive=True)
        self.url = url
        self.key_prefix = key_prefix
        self.connect_timeout = connect_timeout
        self.client_name = f"{key_prefix}:bus"
        self.client = open_redis(
            url,
            connect_timeout=connect_timeout,
            decode_responses=False,
            client_name=self.client_name,
        )
        self.subscriber = SharedSubscriber(
            self.client,
            connect_timeout=connect_timeout,
            buffer_limit=buffer_limit,
            keepalive_interval=keepalive_interval,
        )

    async def publish(self, event: RunEvent) -> None:
        channel = channel_name(self.key_prefix, event.run_id)
        payload = event.to_json_text()
        try:
            await self.client.publish(channel, payload)
        except CONNECTION_ERRORS:
            # A pooled connection the server dropped fails once; a fresh one may not.
            try:
                await self.client.publish(channel, payload)
            except CONNECTION_ERRORS as error:
                raise unavailable(self.url, f"publishing to {channel}", error) from error

    async def publish_batch(self, events: Sequence[RunEvent]) -> None:
        """One pipeline (no MULTI) for the batch: one round trip instead of one per event."""
        if not events:
            return
        commands = [
            (channel_name(self.key_prefix, event.run_id), event.to_json_text()) for event in events
        ]

        async def send() -> None:
            async with self.client.pipeline(transaction=False) as pipe:
                for channel, payload in commands:
                    pipe.publish(channel, payload)
                await pipe.execute()

        try:
            await send()
        except CONNECTION_ERRORS:
            try:  # as publish: a pooled connection the server dropped fails once
                await send()
            except CONNECTION_ERRORS as error:
                raise unavailable(self.url, f"publishing {len(events)} events", error) from error

    async def subscribe(self, run_id: str) -> RedisSubscription:
        """A subscription that receives every event published once this returns."""
        channel = channel_name(self.key_prefix, run_id)
        subscription = RedisSubscription(self.subscriber, run_id, channel)
        deadline = asyncio.get_running_loop().time() + self.connect_timeout
        try:
            await self.subscriber.add(subscription, deadline)
        except CONNECTION_ERRORS as error:
            cause = self.subscriber.last_error or error
            raise unavailable(self.url, f"subscribing to {channel}", cause) from error
        return subscription

    def open_subscriptions(self) -> list[str]:
        """Run ids with a subscription open, its subscribe having returned (one entry each)."""
        return sorted(
            subscription.run_id
            for subscription in self.subscriber.subscriptions()
            if subscription.started
        )

    async def aclose(self) -> None:
        for subscription in self.subscriber.subscriptions():
            await subscription.aclose()
        await self.subscriber.stop()
        await self.client.aclose()
