"""Throwaway namespaces on shared servers, for tests: the same servers, the data kept apart.

A namespace keeps an adapter's data apart: Redis keys and channels under a prefix, a PostgreSQL
schema, an SQLite file of its own. An adapter that keeps data needs an entry in the tables below.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path, PurePosixPath
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from agents_run.config.settings import STORE_URL, InfraConfig
from agents_run.config.wiring import (
    STORE_ADAPTERS,
    build_store,
    configured_adapters,
    find_adapter,
    postgres_store,
    refusal_as_config_error,
    split_postgres_schema,
    sqlite_path,
)
from agents_run.errors import InvalidArgument

_NAMESPACE = re.compile(r"^[a-z_][a-z0-9_]{0,55}$")


def _postgres_url_in(url: str, namespace: str) -> str:
    conninfo, _ = split_postgres_schema(url)
    parts = urlsplit(conninfo)
    query = urlencode([*parse_qsl(parts.query, keep_blank_values=True), ("schema", namespace)])
    return urlunsplit(parts._replace(query=query))


def _sqlite_url_in(url: str, namespace: str) -> str:
    path = PurePosixPath(sqlite_path(url))
    return f"sqlite://{path.with_name(f'{path.stem}-{namespace}{path.suffix}')}"


async def _drop_postgres_schema(url: str, config: InfraConfig) -> None:
    store = postgres_store(url, config)
    try:
        await store.drop_schema()
    finally:
        await store.aclose()


async def _remove_sqlite_files(url: str, config: InfraConfig) -> None:
    path = sqlite_path(url)
    await asyncio.to_thread(_remove_files, [f"{path}{end}" for end in ("", "-wal", "-shm")])


def _remove_files(paths: list[str]) -> None:
    for path in paths:
        Path(path).unlink(missing_ok=True)


async def _delete_redis_keys(url: str, config: InfraConfig) -> None:
    from agents_run.adapters.redis_connection import delete_keys  # noqa: PLC0415 - as in wiring

    await delete_keys(url, config.key_prefix, connect_timeout=config.connect_timeout)


# The store URL in a namespace, by store adapter (the Redis adapters take the key prefix).
_STORE_URL_IN: dict[str, Callable[[str, str], str]] = {
    "postgres": _postgres_url_in,
    "sqlite": _sqlite_url_in,
}
# What removes a namespace's data, by adapter; run once per URL.
_REMOVE: dict[str, Callable[[str, InfraConfig], Awaitable[None]]] = {
    "postgres": _drop_postgres_schema,
    "sqlite": _remove_sqlite_files,
    "redis": _delete_redis_keys,
    "bullmq": _delete_redis_keys,
}


def isolated(config: InfraConfig, namespace: str) -> InfraConfig:
    """``config`` on the same servers, in a namespace of its own: Redis keys and channels under
    ``namespace``, PostgreSQL tables in schema ``namespace``, an SQLite file named after it.

    For tests and throwaway environments; ``create_namespace`` and ``remove_namespace`` make and
    remove what it needs.
    """
    if not _NAMESPACE.match(namespace):
        raise InvalidArgument(
            f"namespace {namespace!r} is malformed: use 1 to 56 lower-case letters, digits or _, "
            "not starting with a digit"
        )
    store = find_adapter(STORE_URL, STORE_ADAPTERS, config.store_url)
    url_in = _STORE_URL_IN.get(store.name)
    store_url = url_in(config.store_url, namespace) if url_in else config.store_url
    return replace(config, store_url=store_url, key_prefix=namespace)


async def create_namespace(config: InfraConfig) -> None:
    """Create the store's schema where ``config`` needs one (``agents-run db init``)."""
    store = build_store(config)
    try:
        await store.create_schema()
    finally:
        await store.aclose()


async def remove_namespace(config: InfraConfig) -> None:
    """Remove everything ``config``'s namespace holds: its PostgreSQL schema or SQLite file, and
    its Redis keys. Irreversible: meant for namespaces made with ``isolated``."""
    removed: set[tuple[Callable[[str, InfraConfig], Awaitable[None]], str]] = set()
    for variable, adapter, url in configured_adapters(config):
        remove = _REMOVE.get(adapter.name)
        if remove is not None and (remove, url) not in removed:
            removed.add((remove, url))
            with refusal_as_config_error(variable, adapter, url):
                await remove(url, config)
