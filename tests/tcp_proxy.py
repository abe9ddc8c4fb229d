"""A loopback TCP proxy that a test can switch off and on, to give a client a real outage."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit


class TcpProxy:
    """Forwards ``127.0.0.1:port`` to ``target``; ``stop`` drops every connection and refuses new
    ones until ``start`` listens again on the same port. ``blackhole`` = True loses whatever
    either side sends, without closing anything, as a broken network does; ``latency`` seconds
    delay every chunk forwarded, each way (a slow network)."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()
        self.blackhole = False
        self.latency = 0.0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._forward, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._open):
            writer.close()
        self._open.clear()

    async def _forward(self, client_in: asyncio.StreamReader, client: asyncio.StreamWriter) -> None:
        try:
            server_in, server = await asyncio.open_connection(*self._target)
        except OSError:
            client.close()
            return
        self._open |= {client, server}
        try:
            await asyncio.gather(self._pipe(client_in, server), self._pipe(server_in, client))
        except asyncio.CancelledError:
            # The loop is closing: asyncio's stream callback would log this task's cancellation.
            client.close()
            server.close()
        self._open -= {client, server}

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await source.read(65536):
                if self.latency:
                    await asyncio.sleep(self.latency)
                if not self.blackhole:
                    sink.write(data)
                    await sink.drain()
        sink.close()


@contextlib.asynccontextmanager
async def proxied(url: str) -> AsyncIterator[tuple[TcpProxy, str]]:
    """A started proxy to the server of ``url``, and ``url`` rewritten to go through it."""
    parts = urlsplit(url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 6379)
    await proxy.start()
    try:
        yield proxy, urlunsplit(parts._replace(netloc=f"127.0.0.1:{proxy.port}"))
    finally:
        await proxy.stop()
