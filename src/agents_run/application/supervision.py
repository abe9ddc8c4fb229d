"""A worker and an outbox publisher supervised inside another process (``agents-run serve`` on
in-memory infrastructure, where nothing else can reach the runs), with a graceful shutdown."""

from __future__ import annotations

import asyncio
import logging
from types import TracebackType

from agents_run.application.outbox_publisher import publish_pending_outbox_events_once
from agents_run.application.processes import serve_publisher, serve_worker
from agents_run.arguments import require_positive_int, require_seconds

log = logging.getLogger("agents_run.worker")


class InProcessWorkers:
    """``async with InProcessWorkers(...)``: ``concurrency`` worker loops and one publisher run
    as tasks of the current infra while the block runs.

    On exit the worker takes no new job; runs in progress have ``grace`` seconds to end, then
    stop at their next step (``RunFailed`` of type ``WorkerShutdown``); ``stop_now()`` or setting
    ``stop`` (a second signal) ends the grace period at once. Then the publisher stops and what
    the outbox still holds is published once more. Each wait is bounded by ``shutdown_timeout``.
    """

    def __init__(
        self,
        *,
        concurrency: int = 1,
        grace: float = 10.0,
        shutdown_timeout: float = 5.0,
        idle_poll: float = 0.1,
        stop: asyncio.Event | None = None,
    ) -> None:
        require_positive_int(concurrency, "concurrency")
        require_seconds(grace, "grace")
        require_seconds(shutdown_timeout, "shutdown_timeout")
        require_seconds(idle_poll, "idle_poll", positive=True)
        self.concurrency = concurrency
        self._grace = grace
        self._shutdown_timeout = shutdown_timeout
        self._idle_poll = idle_poll
        self._draining = asyncio.Event()
        self._stop = stop or asyncio.Event()  # set: runs in progress stop at their next step
        self._publisher_stop = asyncio.Event()
        self._worker: asyncio.Task[int] | None = None
        self._publisher: asyncio.Task[int] | None = None

    def stop_now(self) -> None:
        """Runs in progress stop at their next step instead of waiting out the grace period."""
        self._draining.set()
        self._stop.set()

    async def __aenter__(self) -> InProcessWorkers:
        self._worker = asyncio.create_task(
            serve_worker(
                draining=self._draining,
                stop=self._stop,
                concurrency=self.concurrency,
                idle_poll=self._idle_poll,
            )
        )
        self._publisher = asyncio.create_task(serve_publisher(stop=self._publisher_stop))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._draining.set()
        if self._worker is not None:
            await asyncio.wait([self._worker], timeout=self._grace)
            self._stop.set()
            await _finish(self._worker, self._shutdown_timeout)
        self._publisher_stop.set()
        if self._publisher is not None:
            await _finish(self._publisher, self._shutdown_timeout)
            await _publish_what_is_left(self._shutdown_timeout)


async def _publish_what_is_left(timeout: float) -> None:
    """What the worker appended while the publisher was stopping, so live tails elsewhere get it."""
    try:
        async with asyncio.timeout(timeout):
            await publish_pending_outbox_events_once()
    except Exception:
        log.exception("publishing the outbox on shutdown failed; another publisher will do it")


async def _finish(task: asyncio.Task[int], timeout: float) -> None:
    await asyncio.wait([task], timeout=timeout)
    task.cancel()  # a no-op where it ended in time
    outcome = (await asyncio.gather(task, return_exceptions=True))[0]
    if isinstance(outcome, Exception):
        log.error("in-process worker or publisher failed on shutdown: %r", outcome)
