"""The real servers that some tests need: where they are, and what to do when one does not answer.

A test that needs a server calls ``require_service``: it skips with the reason where the server
does not answer, and fails instead where ``AGENTS_RUN_REQUIRE_SERVICES=1`` (as CI sets it).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Awaitable, Callable

import pytest
from redis.asyncio import Redis

from agents_run.formatting import redact

REQUIRE_SERVICES = "AGENTS_RUN_REQUIRE_SERVICES"
TEST_REDIS_URL = "AGENTS_RUN_TEST_REDIS_URL"
DEFAULT_TEST_REDIS_URL = "redis://127.0.0.1:6379/0"
PROBE_TIMEOUT = 2.0

# url -> None where the server answered the probe, else why not (probed once per process).
_probe_failures: dict[str, str | None] = {}


def unique_prefix(kind: str) -> str:
    """A namespace that no other test, worker or engineer sharing the server uses."""
    return f"test-{kind}-{uuid.uuid4().hex[:12]}"


async def require_service(name: str, url: str, probe: Callable[[], Awaitable[object]]) -> None:
    """Skip the test where ``probe()`` raises (fail instead under AGENTS_RUN_REQUIRE_SERVICES=1)."""
    if url not in _probe_failures:
        try:
            await probe()
            _probe_failures[url] = None
        except Exception as error:
            _probe_failures[url] = f"{type(error).__name__}: {error}"
    failure = _probe_failures[url]
    if failure is None:
        return
    reason = (
        f"{name} at {redact(url)} does not answer ({failure}); start it, or point the tests "
        "at one with AGENTS_RUN_TEST_*_URL"
    )
    if os.environ.get(REQUIRE_SERVICES) == "1":
        pytest.fail(f"{REQUIRE_SERVICES}=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def redis_url() -> str:
    return os.environ.get(TEST_REDIS_URL) or DEFAULT_TEST_REDIS_URL


def _redis_client(url: str) -> Redis:
    client: Redis = Redis.from_url(
        url, socket_connect_timeout=PROBE_TIMEOUT, socket_timeout=PROBE_TIMEOUT
    )
    return client


async def require_redis() -> str:
    """The test Redis URL, once the server there has answered a PING."""
    url = redis_url()

    async def ping() -> None:
        client = _redis_client(url)
        try:
            await client.ping()
        finally:
            await client.aclose()

    await require_service("Redis", url, ping)
    return url


async def delete_redis_keys(url: str, prefix: str) -> int:
    """Delete every key under ``prefix`` (SCAN + DEL, never FLUSHDB: others share the server)."""
    client = _redis_client(url)
    deleted = 0
    try:
        async for key in client.scan_iter(match=f"{prefix}*", count=500):
            deleted += await client.delete(key)
    finally:
        await client.aclose()
    return deleted


async def kill_redis_connections(url: str, client_name: str, *, pubsub: bool) -> int:
    """Drop the server side of the connections named ``client_name`` (only ours, never others'),
    either the subscribed ones or the others; returns how many were killed."""
    client = _redis_client(url)
    killed = 0
    try:
        for connection in await client.client_list():
            if connection["name"] != client_name or ("P" in connection["flags"]) != pubsub:
                continue
            killed += int(await client.client_kill_filter(_id=connection["id"]))
    finally:
        await client.aclose()
    return killed
