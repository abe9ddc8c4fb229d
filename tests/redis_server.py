"""A Redis server of the test's own, on a free port and without persistence, that the test can
restart: what a Redis restart in production looks like to clients (every key is gone)."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from agents_run.adapters.redis_connection import CONNECTION_ERRORS
from tests.services import services_required

START_DEADLINE = 10.0


class RedisServer:
    def __init__(self, port: int, folder: str) -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self._folder = folder
        self._process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self._process = await asyncio.create_subprocess_exec(
            "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            self._folder,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        client = Redis.from_url(self.url, socket_connect_timeout=1.0)
        try:
            async with asyncio.timeout(START_DEADLINE):
                while True:
                    with contextlib.suppress(*CONNECTION_ERRORS):
                        if await client.ping():
                            return
                    await asyncio.sleep(0.05)
        finally:
            await client.aclose()

    async def key_count(self) -> int:
        client = Redis.from_url(self.url, socket_connect_timeout=1.0)
        try:
            count: int = await client.dbsize()
        finally:
            await client.aclose()
        return count

    async def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.returncode is None:
            process.kill()  # no persistence: everything it held is lost, as after a crash
            await process.wait()

    async def restart(self) -> None:
        await self.stop()
        await self.start()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def own_redis_server() -> AsyncIterator[RedisServer]:
    """A fresh ``redis-server``; skips the test where none is installed (fails in CI)."""
    if shutil.which("redis-server") is None:
        reason = "redis-server is not installed"
        if services_required():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    with tempfile.TemporaryDirectory(prefix="agents-run-redis-") as folder:
        server = RedisServer(_free_port(), folder)
        await server.start()
        try:
            yield server
        finally:
            await server.stop()
