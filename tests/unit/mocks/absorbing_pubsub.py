"""A Redis client double whose Pub/Sub SUBSCRIBE swallows a cancellation, as redis-py's
``asyncio.wait_for`` around a socket write does on Python 3.11 when the write ends in the same
loop step as the cancel: for unit tests of ``SharedSubscriber`` being stopped mid-subscribe."""

from __future__ import annotations

import asyncio
from typing import Any


class AbsorbingPubSub:
    def __init__(self, client: AbsorbingClient) -> None:
        self._client = client
        self._replies: list[dict[str, Any]] = []

    async def subscribe(self, *names: str) -> None:
        self._client.subscribing.set()
        try:
            await asyncio.Event().wait()  # a SUBSCRIBE that never completes by itself
        except asyncio.CancelledError:
            self._client.absorbed += 1  # returns as though the write had completed
        self._replies.extend(
            {"type": "subscribe", "channel": name.encode(), "data": 1} for name in names
        )

    async def get_message(self, timeout: float) -> dict[str, Any] | None:
        self._client.messages_read += 1
        if self._replies:
            return self._replies.pop(0)
        await asyncio.sleep(timeout)
        return None

    async def ping(self) -> None:
        pass

    async def unsubscribe(self, *names: str) -> None:
        pass

    async def aclose(self) -> None:
        pass


class AbsorbingClient:
    """Stands for ``redis.asyncio.Redis``: only ``pubsub()`` is used by the subscriber."""

    def __init__(self) -> None:
        self.subscribing = asyncio.Event()
        self.absorbed = 0
        self.messages_read = 0

    def pubsub(self) -> AbsorbingPubSub:
        return AbsorbingPubSub(self)
