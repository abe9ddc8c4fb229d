"""``agents-run serve``: the HTTP app on uvicorn until a signal, with the in-process worker where
the infrastructure lives in this process's memory."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Iterable

from starlette.types import ASGIApp

from agents_run.application.supervision import InProcessWorkers
from agents_run.entrypoints.shutdown import SHUTDOWN_SIGNALS, shutdown_on_signals
from agents_run.http.serving import running_server
from agents_run.http.settings import HttpLimits


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
    stop_signals: Iterable[signal.Signals] = SHUTDOWN_SIGNALS,
    limits: HttpLimits | None = None,
    idle_poll: float = 0.1,  # the in-process worker's, between looks at an empty queue
) -> int:
    """Serve ``app`` until ``stop`` is set or a stop signal arrives; then shut down gracefully.

    With ``in_process_worker``, ``concurrency`` worker loops and an outbox publisher run in this
    process too (``InProcessWorkers``: the only way runs make progress on in-memory
    infrastructure). On shutdown the listener closes and open streams end first; then the
    workers drain within ``grace`` seconds; a second signal ends that at once.
    """
    stop = stop or asyncio.Event()
    stop_runs = asyncio.Event()
    limits = limits or HttpLimits()
    with shutdown_on_signals(stop, stop_runs, signals=stop_signals):
        async with contextlib.AsyncExitStack() as stack:
            if in_process_worker:
                await stack.enter_async_context(
                    InProcessWorkers(
                        concurrency=concurrency,
                        grace=grace,
                        shutdown_timeout=limits.shutdown_timeout,
                        idle_poll=idle_poll,
                        stop=stop_runs,
                    )
                )
            async with running_server(app, host, port, limits) as running:
                mode = (
                    f"with in-process worker, concurrency {concurrency}"
                    if in_process_worker
                    else "without in-process worker"
                )
                say(f"agents-run serve: listening on {running.url} ({mode})")
                await stop.wait()
                say("agents-run serve: shutting down")
    return 0
