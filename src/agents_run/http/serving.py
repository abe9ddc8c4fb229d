"""Running the app on uvicorn: ``running_server`` (an async context manager, for embedding and
tests) and ``serve`` (what ``agents-run serve`` runs, with the in-process worker)."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import logging
import signal
import socket
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass

import uvicorn
from starlette.requests import Request
from starlette.types import ASGIApp

from agents_run.application.supervision import InProcessWorkers
from agents_run.errors import InvalidArgument
from agents_run.http.protocol import protocol_with
from agents_run.http.settings import LOOPBACK_HOSTS, AuthHook, HttpLimits, end_streams

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
    listener = socket.socket(family, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
    except OSError:
        listener.close()
        raise
    return listener


async def serve(
    app: ASGIApp,
    host: str,
    port: int,
    *,
    in_process_worker: bool,
    concurrency: int = 1,
    grace: float = 10.0,
    say: Callable[[str], object] = print,
    stop: asyncio.Event | None = None,
    stop_signals: Iterable[signal.Signals] = (signal.SIGINT, signal.SIGTERM),
    limits: HttpLimits | None = None,
    idle_poll: float = 0.1,  # the in-process worker's, between looks at an empty queue
) -> int:
    """Serve ``app`` until ``stop`` is set or a stop signal arrives; then shut down gracefully.

    With ``in_process_worker``, ``concurrency`` worker loops and an outbox publisher run in this
    process too (``InProcessWorkers``: the only way runs make progress on in-memory
    infrastructure). On shutdown the listener closes and open streams end first; then the
    workers drain within ``grace`` seconds (a second signal ends that at once).
    """
    stop = stop or asyncio.Event()
    limits = limits or HttpLimits()
    workers = (
        InProcessWorkers(
            concurrency=concurrency,
            grace=grace,
            shutdown_timeout=limits.shutdown_timeout,
            idle_poll=idle_poll,
        )
        if in_process_worker
        else None
    )

    def on_signal() -> None:
        if stop.is_set() and workers is not None:
            workers.stop_now()  # a second signal: do not wait out the grace period
        stop.set()

    loop = asyncio.get_running_loop()
    installed = []
    try:
        for stop_signal in stop_signals:
            loop.add_signal_handler(stop_signal, on_signal)
            installed.append(stop_signal)
        async with contextlib.AsyncExitStack() as stack:
            if workers is not None:
                await stack.enter_async_context(workers)
            async with running_server(app, host, port, limits) as running:
                mode = (
                    f"with in-process worker, concurrency {concurrency}"
                    if workers is not None
                    else "without in-process worker"
                )
                say(f"agents-run serve: listening on {running.url} ({mode})")
                await stop.wait()
                say("agents-run serve: shutting down")
    finally:
        for stop_signal in installed:
            loop.remove_signal_handler(stop_signal)
    return 0
