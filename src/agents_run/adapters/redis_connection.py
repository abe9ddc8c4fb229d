"""What the Redis adapters share: a client whose every network call has a deadline, and the
error that says a server did not answer."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis import exceptions as redis_errors
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from agents_run.errors import InfraUnavailable
from agents_run.redaction import redact, scrub, secrets_of

# What a lost or unreachable server raises: redis-py's own errors, and the builtin ones that
# asyncio and the socket layer raise before redis-py wraps them.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
    ConnectionError,
    TimeoutError,
    OSError,
)

# What a pooled connection that the server closed raises on its next use (a restart, CLIENT
# KILL, an idle timeout): a fresh connection may work, so one retry is worth it. Not timeouts:
# a retry there would only double the wait for a server that does not answer.
DROPPED_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    redis_errors.ConnectionError,
    ConnectionError,
)


def open_redis(
    url: str, *, connect_timeout: float, decode_responses: bool, client_name: str
) -> Redis:
    """A pooled client for ``url``; connecting and each reply wait at most ``connect_timeout`` s.

    Its connections carry ``client_name`` (``CLIENT LIST`` shows who holds which connection).

    No I/O happens here. redis-py's own retries are off: each adapter decides what may be retried
    (a retry with backoff would turn an unreachable server into a wait of minutes).
    """
    client: Redis = Redis.from_url(
        url,
        socket_connect_timeout=connect_timeout,
        socket_timeout=connect_timeout,
        retry=Retry(NoBackoff(), 0),
        decode_responses=decode_responses,
        client_name=client_name,
    )
    return client


async def delete_keys(url: str, prefix: str, *, connect_timeout: float) -> int:
    """Delete every key under ``prefix:`` (the bus's and BullMQ's keys all start so) with SCAN +
    DEL, never FLUSHDB: the server may be shared. For throwaway test namespaces."""
    client = open_redis(
        url, connect_timeout=connect_timeout, decode_responses=False, client_name=f"{prefix}:admin"
    )
    deleted = 0
    try:
        async with reporting_unavailable(url, f"deleting the keys of {prefix}"):
            async for key in client.scan_iter(match=f"{prefix}:*", count=500):
                if _owner(key) in (None, prefix):  # not another prefix's, such as prefix:b's
                    deleted += await client.delete(key)
    finally:
        await client.aclose()
    return deleted


# A BullMQ key is ``{prefix}:{prefix}-runs:...`` (see bullmq_queue): this finds its prefix.
_BULLMQ_KEY = re.compile(rb"^(?P<prefix>.+):(?P=prefix)-runs:")


def _owner(key: bytes) -> str | None:
    """The key prefix a BullMQ key belongs to; None for a key of another shape."""
    found = _BULLMQ_KEY.match(key)
    return found["prefix"].decode() if found else None


def unavailable(url: str, doing: str, error: BaseException) -> InfraUnavailable:
    """The error for a Redis server that did not answer while ``doing`` something."""
    detail = scrub(str(error), secrets_of(url))
    return InfraUnavailable(
        f"Redis at {redact(url)} did not answer while {doing} ({type(error).__name__}: "
        f"{detail}); check that the server runs and that the URL is right, "
        "or raise AGENTS_RUN_CONNECT_TIMEOUT for a slow network"
    )


@asynccontextmanager
async def reporting_unavailable(url: str, doing: str) -> AsyncIterator[None]:
    """Turns a lost or unreachable server inside the block into ``InfraUnavailable``."""
    try:
        yield
    except CONNECTION_ERRORS as error:
        raise unavailable(url, doing, error) from error
