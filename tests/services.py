"""Real services for tests: where they are, and what to do where one does not answer.

A test that needs a server calls ``require_service`` (or ``postgres_url`` / ``redis_url``):
where the server does not answer it skips with the reason, or fails where
``AGENTS_RUN_REQUIRE_SERVICES=1`` (as CI sets it). Each server is probed once per test process.
"""

from __future__ import annotations

import functools
import os
import socket
import uuid
from collections.abc import Callable
from urllib.parse import urlsplit

import psycopg
import pytest
import redis
from redis.asyncio import Redis

from agents_run.adapters.redis_connection import delete_keys
from agents_run.config import InfraConfig, config_env
from agents_run.redaction import redact

REQUIRE_SERVICES = "AGENTS_RUN_REQUIRE_SERVICES"
TEST_POSTGRES_URL = "AGENTS_RUN_TEST_POSTGRES_URL"
DEFAULT_TEST_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
TEST_REDIS_URL = "AGENTS_RUN_TEST_REDIS_URL"
DEFAULT_TEST_REDIS_URL = "redis://127.0.0.1:6379/0"
PROBE_TIMEOUT = 2.0
_DEFAULT_PORTS = {"postgresql": 5432, "postgres": 5432, "redis": 6379, "rediss": 6379}


def services_required() -> bool:
    return os.environ.get(REQUIRE_SERVICES, "") == "1"


def unique_prefix(kind: str) -> str:
    """A namespace that no other test, worker or engineer sharing the server uses."""
    return f"test-{kind}-{uuid.uuid4().hex[:12]}"


def tcp_probe(url: str) -> None:
    """Raise ``OSError`` where nothing accepts TCP connections at ``url``'s host and port."""
    parts = urlsplit(url)
    port = parts.port or _DEFAULT_PORTS.get(parts.scheme, 0)
    with socket.create_connection((parts.hostname or "127.0.0.1", port), PROBE_TIMEOUT):
        pass


def postgres_probe(url: str) -> None:
    """Connect and log in, so a wrong user or database is reported like a missing server."""
    with psycopg.connect(url, connect_timeout=int(PROBE_TIMEOUT)):
        pass


def redis_probe(url: str) -> None:
    client = redis.Redis.from_url(
        url, socket_connect_timeout=PROBE_TIMEOUT, socket_timeout=PROBE_TIMEOUT
    )
    try:
        client.ping()
    finally:
        client.close()


@functools.cache
def _unreachable_reason(name: str, url: str, probe: Callable[[str], None]) -> str | None:
    try:
        probe(url)
    except Exception as error:
        detail = " ".join(str(error).split()) or type(error).__name__
        return f"{name} at {redact(url)} does not answer ({detail})"
    return None


def require_service(name: str, url: str, probe: Callable[[str], None] = tcp_probe) -> str:
    """``url``, once ``probe`` reached the service; otherwise skip the test, or fail it in CI."""
    reason = _unreachable_reason(name, url, probe)
    if reason is not None:
        if services_required():
            pytest.fail(f"{reason}, and {REQUIRE_SERVICES}=1 requires it", pytrace=False)
        pytest.skip(f"{reason}; set {REQUIRE_SERVICES}=1 to fail instead")
    return url


def postgres_url() -> str:
    """The test PostgreSQL (``AGENTS_RUN_TEST_POSTGRES_URL``), checked to answer."""
    url = os.environ.get(TEST_POSTGRES_URL, "") or DEFAULT_TEST_POSTGRES_URL
    return require_service("PostgreSQL", url, postgres_probe)


def redis_url() -> str:
    """The test Redis (``AGENTS_RUN_TEST_REDIS_URL``), checked to answer."""
    url = os.environ.get(TEST_REDIS_URL, "") or DEFAULT_TEST_REDIS_URL
    return require_service("Redis", url, redis_probe)


def _redis_client(url: str) -> Redis:
    client: Redis = Redis.from_url(
        url, socket_connect_timeout=PROBE_TIMEOUT, socket_timeout=PROBE_TIMEOUT
    )
    return client


async def delete_redis_keys(url: str, prefix: str) -> int:
    """Delete the keys of a test namespace (the library's own clean-up, as services mode uses)."""
    return await delete_keys(url, prefix, connect_timeout=PROBE_TIMEOUT)


async def count_redis_connections(url: str, client_name: str, *, pubsub: bool) -> int:
    """How many connections named ``client_name`` the server holds, subscribed ones or others."""
    client = _redis_client(url)
    try:
        return sum(
            1
            for connection in await client.client_list()
            if connection["name"] == client_name and ("P" in connection["flags"]) == pubsub
        )
    finally:
        await client.aclose()


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


def process_env(config: InfraConfig) -> dict[str, str]:
    """This process's environment with ``config`` in place of any AGENTS_RUN_* variable, for
    starting ``agents-run`` processes on it."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("AGENTS_RUN_")}
    return env | config_env(config)


def main() -> int:
    """``python -m tests.services``: 0 where the test Redis and PostgreSQL answer; otherwise say
    why and return 2 (skip), or 1 where ``AGENTS_RUN_REQUIRE_SERVICES=1`` (fail)."""
    redis_at = os.environ.get(TEST_REDIS_URL, "") or DEFAULT_TEST_REDIS_URL
    postgres_at = os.environ.get(TEST_POSTGRES_URL, "") or DEFAULT_TEST_POSTGRES_URL
    reasons = [
        reason
        for reason in (
            _unreachable_reason("Redis", redis_at, redis_probe),
            _unreachable_reason("PostgreSQL", postgres_at, postgres_probe),
        )
        if reason is not None
    ]
    if not reasons:
        return 0
    if services_required():
        print(f"services mode: {'; '.join(reasons)}, and {REQUIRE_SERVICES}=1 requires them")
        return 1
    print(f"services mode SKIPPED: {'; '.join(reasons)}; set {REQUIRE_SERVICES}=1 to fail instead")
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
