"""The composition root: builds the ``Infra`` that the environment describes.

The only module that may import the production adapters.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from agents_run.adapters.memory import InMemoryEventBus, InMemoryQueue, InMemoryRunStore
from agents_run.adapters.system import RandomIds, SystemClock
from agents_run.application.infra import DEFAULT_LEASE_SECONDS, Infra, set_infra
from agents_run.errors import InfraConfigError, InvalidArgument
from agents_run.ports import EventBusPort, QueuePort, RunStorePort
from agents_run.redaction import redact, scrub, secrets_of

if TYPE_CHECKING:
    from agents_run.adapters.postgres_store import PostgresRunStore

BUS_URL = "AGENTS_RUN_BUS_URL"
QUEUE_URL = "AGENTS_RUN_QUEUE_URL"
STORE_URL = "AGENTS_RUN_STORE_URL"
KEY_PREFIX = "AGENTS_RUN_KEY_PREFIX"
CONNECT_TIMEOUT = "AGENTS_RUN_CONNECT_TIMEOUT"
LEASE_SECONDS = "AGENTS_RUN_LEASE_SECONDS"

MEMORY_URL = "memory://"
DEFAULT_CONNECT_TIMEOUT = 5.0

DEFAULT_KEY_PREFIX = "agents-run"
_KEY_PREFIX_PATTERN = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


@dataclass(frozen=True)
class InfraConfig:
    """The configuration, checked: each URL in an accepted form."""

    bus_url: str
    queue_url: str
    store_url: str
    key_prefix: str
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    lease_seconds: float = DEFAULT_LEASE_SECONDS

    @property
    def is_all_memory(self) -> bool:
        return self.bus_url == self.queue_url == self.store_url == MEMORY_URL


_ACCEPTED = {
    BUS_URL: ("memory", "redis", "rediss"),
    QUEUE_URL: ("memory", "redis", "rediss"),
    STORE_URL: ("memory", "postgresql", "postgres", "sqlite"),
}
_FORMS = {
    BUS_URL: "memory:// or redis://[:password@]host[:port][/db]",
    QUEUE_URL: "memory:// or redis://[:password@]host[:port][/db] (BullMQ on that Redis)",
    STORE_URL: "memory://, postgresql://user@host[:port]/database[?schema=NAME] or "
    "sqlite:///absolute/path/to/file.db",
}


def read_config(env: Mapping[str, str] = os.environ) -> InfraConfig:
    """Read and check the ``AGENTS_RUN_*`` variables; unset means ``memory://``."""
    urls = {name: _check_url(name, env.get(name, "") or MEMORY_URL) for name in _ACCEPTED}
    key_prefix = env.get(KEY_PREFIX, "") or DEFAULT_KEY_PREFIX
    if not _KEY_PREFIX_PATTERN.match(key_prefix):
        raise InfraConfigError(
            f"{KEY_PREFIX}={key_prefix!r} is malformed: use 1 to 64 letters, digits or . _ : -"
        )
    return InfraConfig(
        bus_url=urls[BUS_URL],
        queue_url=urls[QUEUE_URL],
        store_url=urls[STORE_URL],
        key_prefix=key_prefix,
        connect_timeout=_read_seconds(env, CONNECT_TIMEOUT, DEFAULT_CONNECT_TIMEOUT, 300),
        lease_seconds=_read_seconds(env, LEASE_SECONDS, DEFAULT_LEASE_SECONDS, 3600),
    )


def _read_seconds(env: Mapping[str, str], name: str, default: float, most: float) -> float:
    raw = env.get(name, "")
    if not raw:
        return default
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds <= most:
        raise InfraConfigError(
            f"{name}={raw!r} is malformed: give seconds as a number in (0, {most:g}]"
        )
    return seconds


def _check_url(name: str, url: str) -> str:
    if "://" not in url:
        # Not a URL, so no password can be found in it to redact: the value is not repeated.
        raise InfraConfigError(
            f"{name} is malformed (its value is not shown: it may hold a password): accepted "
            f"forms are {_FORMS[name]}"
        )
    scheme = url.split("://", 1)[0].lower()
    if scheme not in _ACCEPTED[name]:
        raise InfraConfigError(
            f"{name}={redact(url)!r} is malformed: accepted forms are {_FORMS[name]}"
        )
    if scheme == "memory" and url.lower() != MEMORY_URL:
        raise InfraConfigError(f"{name}={redact(url)!r} is malformed: write exactly {MEMORY_URL}")
    try:
        urlsplit(url).port  # noqa: B018 - parsing it is the check
    except ValueError:
        raise InfraConfigError(
            f"{name}={redact(url)!r} is malformed: the port must be a number from 0 to 65535"
        ) from None
    return url


def build_infra(config: InfraConfig) -> Infra:
    """The ``Infra`` that ``config`` describes, without making it current.

    Constructors do no I/O: a server that does not answer raises ``InfraUnavailable`` from the
    first operation that needs it, within ``config.connect_timeout`` seconds.
    """
    bus = _build_bus(config)
    queue = _build_queue(config)
    store = _build_store(config)
    if config.is_all_memory:
        return Infra(bus=bus, queue=queue, store=store, lease_seconds=config.lease_seconds)
    return Infra(
        bus=bus,
        queue=queue,
        store=store,
        ids=RandomIds(),
        clock=SystemClock(),
        lease_seconds=config.lease_seconds,
    )


def _build_bus(config: InfraConfig) -> EventBusPort:
    if config.bus_url == MEMORY_URL:
        return InMemoryEventBus()
    # Imported on demand: processes that use only memory:// never load redis-py or bullmq.
    from agents_run.adapters.redis_bus import RedisEventBus  # noqa: PLC0415

    with _malformed_as_config_error(BUS_URL, config.bus_url):
        return RedisEventBus(
            config.bus_url, key_prefix=config.key_prefix, connect_timeout=config.connect_timeout
        )


def _build_queue(config: InfraConfig) -> QueuePort:
    if config.queue_url == MEMORY_URL:
        return InMemoryQueue()
    from agents_run.adapters.bullmq_queue import BullMQQueue  # noqa: PLC0415  (as in _build_bus)

    with _malformed_as_config_error(QUEUE_URL, config.queue_url):
        return BullMQQueue(
            config.queue_url, key_prefix=config.key_prefix, connect_timeout=config.connect_timeout
        )


@contextmanager
def _malformed_as_config_error(name: str, url: str) -> Iterator[None]:
    """redis-py parses the URL's options (``?socket_timeout=...``) only when a client is built."""
    try:
        yield
    except ValueError as error:
        raise InfraConfigError(
            f"{name}={redact(url)!r} is malformed ({scrub(str(error), secrets_of(url))}): "
            f"accepted forms are {_FORMS[name]}"
        ) from None


def _build_store(config: InfraConfig) -> RunStorePort:
    url = config.store_url
    if url == MEMORY_URL:
        return InMemoryRunStore()
    # Imported here: psycopg alone costs about 60 ms, which in-memory users need not pay.
    try:
        if url.lower().startswith("sqlite://"):
            from agents_run.adapters.sqlite_store import SqliteRunStore  # noqa: PLC0415

            return SqliteRunStore(_sqlite_path(url), busy_timeout=config.connect_timeout)
        return _postgres_store(config)
    except InvalidArgument as error:
        raise InfraConfigError(
            f"{STORE_URL}={redact(url)!r} is malformed: {error}; accepted forms are "
            f"{_FORMS[STORE_URL]}"
        ) from None


def _remove_files(paths: list[str]) -> None:
    for path in paths:
        Path(path).unlink(missing_ok=True)


def _is_postgres(url: str) -> bool:
    return url.lower().startswith(("postgresql://", "postgres://"))


def _postgres_store(config: InfraConfig) -> PostgresRunStore:
    from agents_run.adapters.postgres_store import (  # noqa: PLC0415
        DEFAULT_SCHEMA,
        PostgresRunStore,
    )

    conninfo, schema = _split_postgres_schema(config.store_url)
    return PostgresRunStore(
        conninfo, schema=schema or DEFAULT_SCHEMA, connect_timeout=config.connect_timeout
    )


def _sqlite_path(url: str) -> str:
    """``sqlite:///abs/file.db`` is ``/abs/file.db``; ``sqlite://file.db`` is relative."""
    path = url[len("sqlite://") :].split("?", 1)[0].split("#", 1)[0]
    if not path or path.endswith("/"):
        raise InvalidArgument(f"{path!r} names no file")
    return path


def _split_postgres_schema(url: str) -> tuple[str, str | None]:
    """The URL without its ``schema`` query parameter (ours, not libpq's), and the schema."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schemas = [value for key, value in query if key == "schema"]
    rest = urlencode([(key, value) for key, value in query if key != "schema"])
    return urlunsplit(parts._replace(query=rest)), (schemas[-1] if schemas else None)


def config_env(config: InfraConfig) -> dict[str, str]:
    """The environment variables that describe ``config`` (for starting processes on it)."""
    return {
        BUS_URL: config.bus_url,
        QUEUE_URL: config.queue_url,
        STORE_URL: config.store_url,
        KEY_PREFIX: config.key_prefix,
        CONNECT_TIMEOUT: str(config.connect_timeout),
        LEASE_SECONDS: str(config.lease_seconds),
    }


_NAMESPACE = re.compile(r"^[a-z_][a-z0-9_]{0,55}$")


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
    store_url = config.store_url
    if store_url.lower().startswith("sqlite://"):
        path = PurePosixPath(_sqlite_path(store_url))
        store_url = f"sqlite://{path.with_name(f'{path.stem}-{namespace}{path.suffix}')}"
    elif _is_postgres(store_url):
        conninfo, _ = _split_postgres_schema(store_url)
        parts = urlsplit(conninfo)
        query = urlencode([*parse_qsl(parts.query, keep_blank_values=True), ("schema", namespace)])
        store_url = urlunsplit(parts._replace(query=query))
    return replace(config, store_url=store_url, key_prefix=namespace)


async def create_namespace(config: InfraConfig) -> None:
    """Create the store's schema where ``config`` needs one (``agents-run db init``)."""
    store = _build_store(config)
    try:
        await store.create_schema()
    finally:
        await store.aclose()


async def remove_namespace(config: InfraConfig) -> None:
    """Remove everything ``config``'s namespace holds: its PostgreSQL schema or SQLite file, and
    its Redis keys. Irreversible: meant for namespaces made with ``isolated``."""
    if _is_postgres(config.store_url):
        postgres = _postgres_store(config)
        try:
            await postgres.drop_schema()
        finally:
            await postgres.aclose()
    if config.store_url.lower().startswith("sqlite://"):
        path = _sqlite_path(config.store_url)
        await asyncio.to_thread(_remove_files, [f"{path}{end}" for end in ("", "-wal", "-shm")])
    redis_urls = {url for url in (config.bus_url, config.queue_url) if url != MEMORY_URL}
    if redis_urls:
        from agents_run.adapters.redis_connection import delete_keys  # noqa: PLC0415

        for url in redis_urls:
            await delete_keys(url, config.key_prefix, connect_timeout=config.connect_timeout)


def load_infra_from_config(env: Mapping[str, str] = os.environ) -> Infra:
    """Build the ``Infra`` that ``env`` describes, make it current
    with ``set_infra`` and return it. Raises ``InfraConfigError`` for a malformed value."""
    infra = build_infra(read_config(env))
    set_infra(infra)
    return infra
