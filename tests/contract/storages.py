"""Fresh, empty storage for each store adapter, opened through as many handles as a test needs.

A storage yields ``open_store``: each call returns a new store (its own connections) on the same
data, as separate processes would have. Every handle is closed and the data removed afterwards.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import psycopg
from psycopg import sql

from agents_run import InMemoryRunStore
from agents_run.adapters.postgres_store import PostgresRunStore
from agents_run.adapters.sqlite_store import SqliteRunStore
from agents_run.ports import RunStorePort
from tests.services import postgres_url

OpenStore = Callable[[], RunStorePort]
Storage = Callable[[], AbstractAsyncContextManager[OpenStore]]


@asynccontextmanager
async def memory_storage() -> AsyncIterator[OpenStore]:
    # An in-memory store is shared by handing out the same object.
    store = InMemoryRunStore()
    yield lambda: store


@asynccontextmanager
async def _closing_all(make: Callable[[], RunStorePort]) -> AsyncIterator[OpenStore]:
    opened: list[RunStorePort] = []

    def open_store() -> RunStorePort:
        opened.append(make())
        return opened[-1]

    try:
        yield open_store
    finally:
        for store in opened:
            await store.aclose()


@asynccontextmanager
async def postgres_storage() -> AsyncIterator[OpenStore]:
    """A fresh schema ``test_<uuid>`` on the test PostgreSQL, dropped afterwards."""
    url = postgres_url()
    schema = f"test_{uuid.uuid4().hex}"
    setup = PostgresRunStore(url, schema=schema)
    try:
        await setup.create_schema()
        async with _closing_all(lambda: PostgresRunStore(url, schema=schema)) as open_store:
            yield open_store
    finally:
        await setup.aclose()
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as connection:
            await connection.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
            )


@asynccontextmanager
async def sqlite_storage() -> AsyncIterator[OpenStore]:
    """A database file in a fresh temporary folder, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="agents-run-sqlite-") as folder:
        path = Path(folder) / "runs.db"
        async with _closing_all(lambda: SqliteRunStore(path)) as open_store:
            yield open_store


STORAGES: dict[str, Storage] = {
    "memory": memory_storage,
    "postgres": postgres_storage,
    "sqlite": sqlite_storage,
}
