"""One fixture per port, parametrised over every adapter: each adapter passes the same suite.

To add an adapter, add a factory to the matching dict; a factory is an async context manager
that yields a fresh, empty adapter and cleans up after itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import pytest

from agents_run import InMemoryEventBus, InMemoryQueue, InMemoryRunStore
from agents_run.ports import EventBusPort, QueuePort, RunStorePort


@asynccontextmanager
async def memory_store() -> AsyncIterator[RunStorePort]:
    yield InMemoryRunStore()


@asynccontextmanager
async def memory_bus() -> AsyncIterator[EventBusPort]:
    bus = InMemoryEventBus()
    yield bus
    await bus.aclose()


@asynccontextmanager
async def memory_queue() -> AsyncIterator[QueuePort]:
    yield InMemoryQueue()


STORE_FACTORIES: dict[str, Callable[[], AbstractAsyncContextManager[RunStorePort]]] = {
    "memory": memory_store,
}
BUS_FACTORIES: dict[str, Callable[[], AbstractAsyncContextManager[EventBusPort]]] = {
    "memory": memory_bus,
}
QUEUE_FACTORIES: dict[str, Callable[[], AbstractAsyncContextManager[QueuePort]]] = {
    "memory": memory_queue,
}


@pytest.fixture(params=sorted(STORE_FACTORIES))
async def store(request: pytest.FixtureRequest) -> AsyncIterator[RunStorePort]:
    async with STORE_FACTORIES[request.param]() as adapter:
        yield adapter


@pytest.fixture(params=sorted(BUS_FACTORIES))
async def bus(request: pytest.FixtureRequest) -> AsyncIterator[EventBusPort]:
    async with BUS_FACTORIES[request.param]() as adapter:
        yield adapter


@pytest.fixture(params=sorted(QUEUE_FACTORIES))
async def queue(request: pytest.FixtureRequest) -> AsyncIterator[QueuePort]:
    async with QUEUE_FACTORIES[request.param]() as adapter:
        yield adapter
