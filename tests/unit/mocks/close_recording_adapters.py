"""In-memory adapters that note when they are closed, for unit tests of ``Infra.aclose``."""

from __future__ import annotations

from agents_run import InMemoryEventBus, InMemoryQueue, InMemoryRunStore


class CloseRecordingBus(InMemoryEventBus):
    def __init__(self, closed: list[str]) -> None:
        super().__init__()
        self._closed = closed

    async def aclose(self) -> None:
        self._closed.append("bus")
        await super().aclose()


class CloseRecordingQueue(InMemoryQueue):
    def __init__(self, closed: list[str]) -> None:
        super().__init__()
        self._closed = closed

    async def aclose(self) -> None:
        self._closed.append("queue")
        await super().aclose()


class CloseRecordingStore(InMemoryRunStore):
    def __init__(self, closed: list[str]) -> None:
        super().__init__()
        self._closed = closed

    async def aclose(self) -> None:
        self._closed.append("store")
        await super().aclose()
