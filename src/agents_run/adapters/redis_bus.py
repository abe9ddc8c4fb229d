"""The event bus on Redis Pub/Sub: one channel per run, JSON payloads.

Pub/Sub is at-most-once: a subscriber whose connection drops misses what was published meanwhile.
A subscription reconnects by itself and then answers ``None`` once, which tells ``stream_run`` to
re-read the store, the source of truth, so the gap is repaired there.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from redis.asyncio.client import PubSub

from agents_run.adapters.redis_connection import CONNECTION_ERRORS, open_redis, unavailable
from agents_run.arguments import require_seconds
from agents_run.domain.events import RunEvent

log = logging.getLogger("agents_run.redis_bus")

# Reconnect attempts per next_event call after a dropped connection; each is bounded by the
# connect timeout and by the caller's own timeout.
RESUBSCRIBE_ATTEMPTS = 3


def channel_name(key_prefix: str, run_id: str) -> str:
    return f"{key_prefix}:run:{run_id}:events"


class RedisSubscription:
    """One run's live events on its own Pub/Sub connection."""

    def __init__(self, bus: RedisEventBus, run_id: str) -> None:
        self._bus = bus
        self.run_id = run_id
        self.channel = channel_name(bus.key_prefix, run_id)
        self._pubsub: PubSub | None = None
        self._reported_outage = False  # log an outage once, not at every poll
        self.closed = False

    async def start(self, deadline: float) -> None:
        """Subscribe, returning once the server has confirmed (so no later publish is missed)."""
        loop = asyncio.get_running_loop()
        pubsub = self._bus.client.pubsub()
        self._pubsub = pubsub
        async with asyncio.timeout_at(deadline):
            await pubsub.subscribe(self.channel)
        while (remaining := deadline - loop.time()) > 0:
            message = await pubsub.get_message(timeout=remaining)
            if message is not None and message["type"] == "subscribe":
                return
        raise TimeoutError(f"the server did not confirm SUBSCRIBE {self.channel} in time")

    async def next_event(self, timeout: float) -> RunEvent | None:
        if self.closed:
            return None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(timeout, 0.0)
        while True:
            pubsub = self._pubsub
            if pubsub is None:  # the connection was lost
                await self._resubscribe(deadline)
                return None  # events may have been missed meanwhile: the caller re-reads the store
            try:
                # Waits between replies with its own timeout, never cutting a reply in half.
                message = await pubsub.get_message(timeout=max(deadline - loop.time(), 0.0))
            except CONNECTION_ERRORS as error:
                if not self._reported_outage:
                    log.warning("lost the subscription to %s (%s)", self.channel, error)
                await self._release()
                continue
            except RuntimeError:
                if self._pubsub is None:
                    return None  # closed by another task while this one was waiting
                raise
            if message is None:
                if loop.time() >= deadline:
                    return None
            elif message["type"] == "message":
                event = _decode(message["data"], self.channel)
                if event is not None:
                    return event

    async def _resubscribe(self, deadline: float) -> None:
        """Subscribe again (a few attempts within ``deadline``); where the server does not answer,
        wait until ``deadline`` so that a caller polling the store meanwhile does not spin."""
        loop = asyncio.get_running_loop()
        for _ in range(RESUBSCRIBE_ATTEMPTS):
            attempt_deadline = min(deadline, loop.time() + self._bus.connect_timeout)
            if self.closed or attempt_deadline <= loop.time():
                break
            try:
                await self.start(attempt_deadline)
            except CONNECTION_ERRORS as error:
                await self._release()
                if not self._reported_outage:
                    self._reported_outage = True
                    log.warning(
                        "cannot resubscribe to %s (%s); retrying, streams read the store meanwhile",
                        self.channel,
                        error,
                    )
                continue
            self._reported_outage = False
            log.info("resubscribed to %s", self.channel)
            return
        await asyncio.sleep(max(deadline - loop.time(), 0.0))

    async def _release(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            # Closing the connection ends the subscription on the server too; no reply to await.
            await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def aclose(self) -> None:
        if self.closed:
            return
        self.closed = True
        await self._release()
        self._bus._forget(self)

    async def __aiter__(self) -> AsyncIterator[RunEvent]:
        while not self.closed:
            event = await self.next_event(self._bus.connect_timeout)
            if event is not None:
                yield event


class RedisEventBus:
    """Publishes each run's events to ``{key_prefix}:run:{run_id}:events``.

    Construction does no I/O; a server that does not answer raises ``InfraUnavailable`` from
    ``publish`` or ``subscribe`` within ``connect_timeout`` seconds (a publish is tried twice).
    """

    def __init__(self, url: str, *, key_prefix: str, connect_timeout: float = 5.0) -> None:
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
        self._subscriptions: set[RedisSubscription] = set()

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

    async def subscribe(self, run_id: str) -> RedisSubscription:
        subscription = RedisSubscription(self, run_id)
        deadline = asyncio.get_running_loop().time() + self.connect_timeout
        try:
            await subscription.start(deadline)
        except CONNECTION_ERRORS as error:
            await subscription.aclose()
            raise unavailable(self.url, f"subscribing to {subscription.channel}", error) from error
        self._subscriptions.add(subscription)
        return subscription

    def open_subscriptions(self) -> list[str]:
        """Run ids with a subscription still open (one entry per subscription)."""
        return sorted(subscription.run_id for subscription in self._subscriptions)

    def _forget(self, subscription: RedisSubscription) -> None:
        self._subscriptions.discard(subscription)

    async def aclose(self) -> None:
        for subscription in list(self._subscriptions):
            await subscription.aclose()
        await self.client.aclose()


def _decode(data: bytes | str, channel: str) -> RunEvent | None:
    try:
        return RunEvent.from_json_text(data)
    except (ValueError, KeyError, TypeError) as error:
        log.warning("ignored a malformed message on %s: %s", channel, error)
        return None
