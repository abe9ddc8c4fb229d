"""One Redis Pub/Sub connection shared by every subscription of a bus, fanning messages out.

A process streaming many runs holds one subscriber connection, not one per stream: a run's
channel is subscribed when its first local subscription opens and unsubscribed when its last one
closes. One task reads the connection and hands each message to every subscription of its
channel, each with a bounded buffer of its own: a subscription that falls ``buffer_limit`` events
behind drops what it holds and answers ``None`` once, as after a reconnection, so that its stream
re-reads the store (the source of truth) instead of the process growing without bound or the
others waiting for it. A dropped connection (or one silent for ``keepalive_interval`` that
does not answer a PING) is reopened with a backoff of at most ``RECONNECT_DELAY_MAX`` seconds and
every live channel subscribed again. The reading task runs
only while a subscription is open.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, deque
from collections.abc import AsyncIterator
from contextlib import suppress

from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from agents_run.adapters.redis_connection import CONNECTION_ERRORS
from agents_run.arguments import require_positive_int, require_seconds
from agents_run.domain.events import RunEvent

log = logging.getLogger("agents_run.redis_bus")

DEFAULT_BUFFER_LIMIT = 1000
DEFAULT_KEEPALIVE_INTERVAL = 30.0
RECONNECT_DELAY_MIN = 0.05
RECONNECT_DELAY_MAX = 1.0


class RedisSubscription:
    """One run's live events, as the shared subscriber hands them over."""

    def __init__(self, subscriber: SharedSubscriber, run_id: str, channel: str) -> None:
        self._subscriber = subscriber
        self.run_id = run_id
        self.channel = channel
        self._buffer: deque[RunEvent] = deque()
        self._arrived = asyncio.Event()
        self._missed = False  # answer None once: events may have been lost
        self.started = False  # the server confirmed the channel for it
        self.closed = False

    def deliver(self, event: RunEvent) -> None:
        if len(self._buffer) >= self._subscriber.buffer_limit:
            # Too far behind: what it holds is in the store, which its stream re-reads.
            self._buffer.clear()
            self._missed = True
            self._subscriber.fell_behind += 1
        self._buffer.append(event)
        self._arrived.set()

    def mark_missed(self) -> None:
        self._missed = True
        self._arrived.set()

    async def next_event(self, timeout: float) -> RunEvent | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(timeout, 0.0)
        while not self.closed:
            if self._missed:
                self._missed = False
                return None  # events may have been missed: the caller re-reads the store
            if self._buffer:
                return self._buffer.popleft()
            self._arrived.clear()
            try:
                async with asyncio.timeout_at(deadline):
                    await self._arrived.wait()
            except TimeoutError:
                return None
        return None

    async def aclose(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._buffer.clear()
        self._arrived.set()
        await self._subscriber.remove(self)

    async def __aiter__(self) -> AsyncIterator[RunEvent]:
        while not self.closed:
            event = await self.next_event(self._subscriber.connect_timeout)
            if event is not None:
                yield event


class _Channel:
    def __init__(self) -> None:
        self.members: set[RedisSubscription] = set()
        self.confirmed = asyncio.Event()  # SUBSCRIBE answered on the current connection


class SharedSubscriber:
    """The bus's one subscriber connection and the task that reads it (see the module doc)."""

    def __init__(
        self,
        client: Redis,
        *,
        connect_timeout: float,
        buffer_limit: int,
        keepalive_interval: float = DEFAULT_KEEPALIVE_INTERVAL,
    ) -> None:
        self._client = client
        self.connect_timeout = connect_timeout
        self.keepalive_interval = require_seconds(
            keepalive_interval, "keepalive_interval", positive=True
        )
        self.buffer_limit = require_positive_int(buffer_limit, "buffer_limit")
        self._channels: dict[str, _Channel] = {}
        # SUBSCRIBE commands not yet answered per channel: a channel is confirmed by the reply to
        # its latest one, never by a stale reply to one sent before an UNSUBSCRIBE.
        self._unanswered: Counter[str] = Counter()
        self._pubsub: PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        self._send_lock = asyncio.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.last_error: BaseException | None = None
        # Figures for operators and tests: connections opened, buffers dropped by slow readers.
        self.connections_opened = 0
        self.fell_behind = 0

    @property
    def listening(self) -> bool:
        """True while the connection is up and the server has confirmed every live channel."""
        return self._pubsub is not None and all(
            channel.confirmed.is_set() for channel in self._channels.values()
        )

    def subscriptions(self) -> list[RedisSubscription]:
        return [member for channel in self._channels.values() for member in channel.members]

    async def add(self, subscription: RedisSubscription, deadline: float) -> None:
        """Register ``subscription``; returns once the server has confirmed its channel (so no
        later publish is missed). Raises ``TimeoutError`` where it did not by ``deadline``."""
        self._bind_to_running_loop()
        channel = self._channels.get(subscription.channel)
        is_new = channel is None
        if channel is None:
            channel = self._channels[subscription.channel] = _Channel()
        channel.members.add(subscription)
        try:
            async with asyncio.timeout_at(deadline):
                if is_new:
                    await self._subscribe_channel(subscription.channel)
                await channel.confirmed.wait()
        except BaseException:
            await self.remove(subscription)
            raise
        subscription.started = True

    async def _subscribe_channel(self, name: str) -> None:
        if self._reader is None or self._reader.done():
            # The reader subscribes every live channel, this one included, once connected.
            self._reader = asyncio.create_task(self._read_forever(), name="redis-subscriber")
            return
        async with self._send_lock:
            if self._pubsub is None:
                return  # reconnecting: the reader subscribes every live channel when it is back
            self._unanswered[name] += 1
            # On failure the reader sees the same, reconnects and subscribes every live channel.
            with suppress(*CONNECTION_ERRORS):
                await self._pubsub.subscribe(name)

    async def remove(self, subscription: RedisSubscription) -> None:
        channel = self._channels.get(subscription.channel)
        if channel is None or subscription not in channel.members:
            return
        channel.members.discard(subscription)
        if channel.members:
            return
        del self._channels[subscription.channel]
        if not self._channels:
            await self.stop()  # nothing to listen to: close the connection
            return
        try:
            async with asyncio.timeout(self.connect_timeout), self._send_lock:
                if self._pubsub is not None:
                    await self._pubsub.unsubscribe(subscription.channel)
        except CONNECTION_ERRORS:
            pass  # its messages are ignored, and a reconnection does not subscribe it again

    async def stop(self) -> None:
        """Stop the reader and close the connection (the subscriptions stay registered). Waits
        at most ``connect_timeout`` for the reader to end: a stream closing must never stall."""
        reader, self._reader = self._reader, None
        if reader is not None and not reader.done():
            reader.cancel()
            await asyncio.wait([reader], timeout=self.connect_timeout)

    def _bind_to_running_loop(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            # A bus reused by a later event loop: what the earlier loop held is gone with it.
            self._loop = loop
            self._channels.clear()
            self._unanswered.clear()
            self._pubsub = None
            self._reader = None
            self._send_lock = asyncio.Lock()

    async def _read_forever(self) -> None:
        delay = RECONNECT_DELAY_MIN
        had_outage = False
        while self._channels and self._reader is asyncio.current_task():
            pubsub = self._client.pubsub()
            try:
                # On Python 3.11 redis-py's asyncio.wait_for around a socket write can swallow
                # stop()'s cancel: a reader stopped meanwhile must not go on reading.
                if not await self._connect(pubsub) or self._reader is not asyncio.current_task():
                    return
                if had_outage:
                    log.info("resubscribed to %d channels", len(self._channels))
                had_outage, delay = False, RECONNECT_DELAY_MIN
                await self._dispatch_messages(pubsub)
                return  # stopped
            except CONNECTION_ERRORS as error:
                self.last_error = error
                if not had_outage:
                    log.warning(
                        "lost or cannot resubscribe the Pub/Sub connection (%s: %s); retrying "
                        "within %gs, streams read the store meanwhile",
                        type(error).__name__,
                        error,
                        RECONNECT_DELAY_MAX,
                    )
                had_outage = True
            except Exception:
                log.exception("the Redis subscriber failed; reconnecting")
                had_outage = True
            finally:
                if self._reader is asyncio.current_task():
                    self._connection_lost()
                async with self._send_lock:  # no (UN)SUBSCRIBE is being written on it any more
                    if self._pubsub is pubsub:
                        self._pubsub = None
                # Closing the connection ends its subscriptions on the server; no reply to await.
                await pubsub.aclose()  # type: ignore[no-untyped-call]
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_DELAY_MAX)

    async def _connect(self, pubsub: PubSub) -> bool:
        """Subscribe ``pubsub`` to every live channel; False where none is left."""
        async with asyncio.timeout(self.connect_timeout), self._send_lock:
            names = list(self._channels)
            if not names:
                return False
            self.connections_opened += 1
            self._unanswered.update(names)
            await pubsub.subscribe(*names)
            self._pubsub = pubsub
        return True

    async def _dispatch_messages(self, pubsub: PubSub) -> None:
        pinged = False
        # A PING's write can swallow stop()'s cancel too (see _read_forever): check each turn.
        while self._reader is asyncio.current_task():
            # A connection that died without a word (a lost network) shows only as silence:
            # after keepalive_interval of it, a PING must be answered within connect_timeout.
            wait = self.connect_timeout if pinged else self.keepalive_interval
            message = await pubsub.get_message(timeout=wait)
            if message is None:
                if pinged:
                    raise ConnectionError(f"no answer to PING within {wait:g}s")
                async with self._send_lock:
                    await pubsub.ping()
                pinged = True
                continue
            pinged = False
            if message["type"] == "pong":
                continue
            name = message["channel"].decode()
            if message["type"] == "message":
                self._fan_out(name, message["data"])
            elif message["type"] == "subscribe":
                self._confirm(name)

    def _fan_out(self, name: str, data: bytes) -> None:
        channel = self._channels.get(name)
        if channel is None:
            return  # unsubscribed meanwhile
        event = _decode(data, name)  # once for all, as the in-memory bus shares one event
        if event is not None:
            for member in channel.members:
                member.deliver(event)

    def _confirm(self, name: str) -> None:
        self._unanswered[name] -= 1
        if self._unanswered[name] > 0:
            return
        del self._unanswered[name]
        channel = self._channels.get(name)
        if channel is None or channel.confirmed.is_set():
            return
        channel.confirmed.set()
        for member in channel.members:
            if member.started:
                member.mark_missed()  # subscribed again after a lost connection: maybe a gap

    def _connection_lost(self) -> None:
        self._unanswered.clear()
        for channel in self._channels.values():
            channel.confirmed.clear()


def _decode(data: bytes | str, channel: str) -> RunEvent | None:
    try:
        return RunEvent.from_json_text(data)
    except (ValueError, KeyError, TypeError) as error:
        log.warning("ignored a malformed message on %s: %s", channel, error)
        return None
