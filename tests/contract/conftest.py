"""One fixture per port, parametrised over every adapter: each adapter passes the same suite.

To add an adapter, add a factory to the matching dict; a factory is an async context manager
that yields a fresh, empty adapter and cleans up after itself. Stores are the exception: add a
storage to ``tests/contract/storages.py``, which also opens second handles for ``store_pair``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import pytest

from agents_run import InMemoryEventBus, InMemoryQueue
from agents_run.adapters.bullmq_queue import BullMQQueue
from agents_run.adapters.redis_bus import RedisEventBus
from agents_run.ports import EventBusPort, QueuePort, RunStorePort
from tests.contract.storages import STORAGES, Storage
from tests.services import delete_redis_keys, redis_url, unique_prefix


def _one_store(storage: Storage) -> Callable[[], AbstractAsyncContextManager[RunStorePort]]:
    @asynccontextmanager
    async def factory() -> AsyncIterator[RunStorePort]:
        async with storage() as open_store:
            yield open_store()

    return factory


@asynccontextmanager
async def memory_bus() -> AsyncIterator[EventBusPort]:
    bus = InMemoryEventBus()
    yield bus
    await bus.aclose()


@asynccontextmanager
async def memory_queue() -> AsyncIterator[QueuePort]:
    yield InMemoryQueue()


@asynccontextmanager
async def redis_bus() -> AsyncIterator[EventBusPort]:
    url = redis_url()
    prefix = unique_prefix("bus")
    bus = RedisEventBus(url, key_prefix=prefix, connect_timeout=5.0)
    try:
        yield bus
        assert bus.open_subscriptions() == [], "a test left a subscription open"
    finally:
        await bus.aclose()
        await delete_redis_keys(url, prefix)


@asynccontextmanager
async def bullmq_queue() -> AsyncIterator[QueuePort]:
    url = redis_url()
    prefix = unique_prefix("queue")
    # Retries after 1, 2, 4 ... ms, so that a job can fail all its attempts within a test.
    queue = BullMQQueue(url, key_prefix=prefix, connect_timeout=5.0, retry_delay_ms=1)
    try:
        yield queue
    finally:
        await queue.aclose()
        await delete_redis_keys(url, prefix)


STORE_FACTORIES: dict[str, Callable[[], AbstractAsyncContextManager[RunStorePort]]] = {
    name: _one_store(storage) for name, storage in STORAGES.items()
}
BUS_FACTORIES: dict[str, Callable[[], AbstractAsyncContextManager[EventBusPort]]] = {
    "memory": memory_bus,
    "redis": redis_bus,
}
QUEUE_FACTORIES: dict[str, Callable[[], AbstractAsyncContextManager[QueuePort]]] = {
    "memory": memory_queue,
    "bullmq": bullmq_queue,
}


@pytest.fixture(params=sorted(STORE_FACTORIES))
async def store(request: pytest.FixtureRequest) -> AsyncIterator[RunStorePort]:
    async with STORE_FACTORIES[request.param]() as adapter:
        yield adapter


@pytest.fixture(params=sorted(STORAGES))
async def store_pair(
    request: pytest.FixtureRequest,
) -> AsyncIterator[tuple[RunStorePort, RunStorePort]]:
    """Two handles on one storage, each with its own connections, like two processes."""
    async with STORAGES[request.param]() as open_store:
        yield open_store(), open_store()


@pytest.fixture(params=sorted(BUS_FACTORIES))
async def bus(request: pytest.FixtureRequest) -> AsyncIterator[EventBusPort]:
    async with BUS_FACTORIES[request.param]() as adapter:
        yield adapter


@pytest.fixture(params=sorted(QUEUE_FACTORIES))
async def queue(request: pytest.FixtureRequest) -> AsyncIterator[QueuePort]:
    async with QUEUE_FACTORIES[request.param]() as adapter:
        yield adapter
