"""Running the app on uvicorn (``running_server``, for embedding and tests; ``agents-run serve``
uses it too), and the settings ``agents-run serve`` derives from its options and environment."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import logging
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass

import uvicorn
from starlette.requests import Request
from starlette.types import ASGIApp

from agents_run.errors import InvalidArgument
from agents_run.http.protocol import protocol_with
from agents_run.http.settings import LOOPBACK_HOSTS, AuthHook, HttpLimits
from agents_run.http.sse import end_streams

log = logging.getLogger("agents_run.http")


def bearer_token_auth(token: str) -> AuthHook | None:
    """An auth hook that lets through requests with ``Authorization: Bearer <token>`` (or, for
    an ``EventSource``, which cannot send headers, ``?access_token=<token>`` on event streams);
    None where ``token`` is empty: no auth."""
    if not token:
        return None
    expected = token.encode()

    def authorized(request: Request) -> bool:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" and request.url.path.endswith("/events"):
            given = request.query_params.get("access_token", "")
        return hmac.compare_digest(given.strip().encode(), expected)

    return authorized


def default_allowed_hosts(bind_host: str) -> tuple[str, ...]:
    """The loopback names where the server listens on loopback only; elsewhere the Host names
    must be configured (a server reachable from others must say who it is)."""
    try:
        loopback = bind_host == "localhost" or ipaddress.ip_address(bind_host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise InvalidArgument(
            f"serving on {bind_host}, which others can reach: say which Host names this server "
            "answers for with --allowed-host NAME (repeatable; '*' for any, behind a proxy "
            "that checks it)"
        )
    return LOOPBACK_HOSTS


@dataclass(frozen=True)
class RunningServer:
    host: str
    port: int
    server: uvicorn.Server

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host  # an IPv6 address
        return f"http://{host}:{self.port}"

    @property
    def open_connections(self) -> int:
        return len(self.server.server_state.connections)


@contextlib.asynccontextmanager
async def running_server(
    app: ASGIApp, host: str = "127.0.0.1", port: int = 0, limits: HttpLimits | None = None
) -> AsyncIterator[RunningServer]:
    """``app`` served by uvicorn on ``host:port`` (0: a free port) while the block runs. On exit
    it stops listening, ends the app's open event streams (where ``create_app`` made it) and
    waits up to ``limits.shutdown_timeout`` for requests in progress before cancelling them."""
    limits = limits or HttpLimits()
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        http=protocol_with(limits),
        lifespan="off",
        access_log=False,  # the app logs one line per request, control characters escaped
        log_config=None,
        h11_max_incomplete_event_size=limits.max_head_bytes,
        timeout_graceful_shutdown=max(1, round(limits.shutdown_timeout)),
        backlog=1024,
    )
    server = uvicorn.Server(config)
    config.load()
    server.lifespan = config.lifespan_class(config)
    listener = _listen(host, port)  # here, so a port in use is an OSError, not uvicorn's exit
    await server.startup(sockets=[listener])
    bound = listener.getsockname()[1]
    ticking = asyncio.create_task(server.main_loop())
    try:
        yield RunningServer(host, bound, server)
    finally:
        with contextlib.suppress(AttributeError):
            end_streams(app)
        server.should_exit = True
        await ticking
        for connection in list(server.server_state.connections):
            if connection.cycle is None:  # type: ignore[union-attr]
                connection.transport.close()  # connected, no request yet: nothing to finish
        await server.shutdown(sockets=[listener])


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that name it (else Nagle and
    # delayed ACKs hold each keep-alive answer back 40 ms).
    listener = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
    except OSError:
        listener.close()
        raise
    return listener
