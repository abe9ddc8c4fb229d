"""A worker and an outbox publisher as tasks of the caller's loop, for tests, notebooks and
scripts that want to stream live or cancel mid-run; and waiting for a run's end."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from contextlib import aclosing, asynccontextmanager

from agents_run.application.infra import get_infra
from agents_run.application.outbox_publisher import publish_pending_outbox_events_once
from agents_run.application.run_worker import run_worker_once
from agents_run.application.stream_run import stream_run
from agents_run.arguments import require_positive_int, require_seconds
from agents_run.domain.events import RunEvent
from agents_run.errors import DrainDidNotSettle, RunDidNotEnd

DEFAULT_EXIT_TIMEOUT = 30.0
# Idle tasks sleep in the ports' wake-up calls (in memory: events, no timers); this bounds a
# wake-up lost on a networked port.
IDLE_WAIT = 0.5


@asynccontextmanager
async def running_worker(
    *, concurrency: int = 1, exit_timeout: float = DEFAULT_EXIT_TIMEOUT
) -> AsyncIterator[None]:
    """Run ``concurrency`` worker loops and one outbox publisher while the block runs.

    On exit they take every job still queued, finish the runs in hand, publish what was
    appended, and stop; what they raised is raised here. Where that takes more than
    ``exit_timeout`` seconds, runs in flight are interrupted (ending ``WorkerShutdown``), the
    outbox is published, and ``DrainDidNotSettle`` is raised. Where the block raises, runs in
    flight are interrupted at once and the block's error propagates.
    """
    require_positive_int(concurrency, "concurrency")
    require_seconds(exit_timeout, "exit_timeout", positive=True)
    queue = get_infra().queue
    closing = asyncio.Event()  # the block ended: take what is queued, then return
    stop = asyncio.Event()  # interrupt the runs in flight
    workers_done = asyncio.Event()

    async def work() -> None:
        while True:
            if await run_worker_once(stop=stop):
                continue
            if closing.is_set():
                return
            await _first_of(queue.wait_for_job(IDLE_WAIT), closing.wait())

    async def publish() -> None:
        store = get_infra().store
        while True:
            if await publish_pending_outbox_events_once():
                continue
            if workers_done.is_set():
                return  # the workers appended nothing after this pass found nothing
            await _first_of(store.wait_for_outbox(IDLE_WAIT), workers_done.wait())

    async def all_workers() -> None:
        try:
            results = await asyncio.gather(
                *(work() for _ in range(concurrency)), return_exceptions=True
            )
        finally:
            workers_done.set()
        for result in results:
            if isinstance(result, BaseException):
                raise result

    workers = asyncio.create_task(all_workers())
    publisher = asyncio.create_task(publish())
    try:
        yield
    except BaseException:
        stop.set()
        closing.set()
        await _settle(workers, publisher, exit_timeout)
        raise
    closing.set()
    done, _ = await asyncio.wait([workers], timeout=exit_timeout)
    if not done:
        stop.set()
        await _settle(workers, publisher, exit_timeout)
        raise DrainDidNotSettle(
            f"running_worker: the work in hand did not end within exit_timeout={exit_timeout:g}s "
            "of the block's end; the runs in flight were stopped (WorkerShutdown)"
        )
    await _settle(workers, publisher, exit_timeout)
    workers.result()  # the first error of a worker, then the publisher's
    publisher.result()


async def _settle(
    workers: asyncio.Task[None], publisher: asyncio.Task[None], timeout: float
) -> None:
    """Wait for both within ``timeout``; cancel what is still running after it."""
    _, pending = await asyncio.wait([workers, publisher], timeout=timeout)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending)
    for task in (workers, publisher):
        if not task.cancelled():
            # Retrieved: where both failed only one error is raised, and asyncio would log the
            # other from the garbage collector, at any moment (seen to break a later ast.parse).
            task.exception()


async def _first_of(*waits: Awaitable[object]) -> None:
    tasks = [asyncio.ensure_future(wait) for wait in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks)
        for task in tasks:
            if not task.cancelled():
                task.result()  # a failing port raises here


async def wait_for_run(run_id: str, timeout: float = 60.0) -> RunEvent:
    """The run's terminal event (``RunFinished``, ``RunFailed`` or ``RunCancelled``), once it is
    stored. Raises ``RunNotFound`` for an unknown run and ``RunDidNotEnd`` after ``timeout``
    seconds. Something must run the run meanwhile (``running_worker()``, a worker process)."""
    require_seconds(timeout, "timeout", positive=True)
    run = await get_infra().store.get_run(run_id)
    try:
        async with asyncio.timeout(timeout):
            events = stream_run(run_id, max(run.last_seq, 1), idle_timeout=timeout + 1)
            async with aclosing(events):  # type: ignore[type-var]
                async for event in events:
                    if event.is_terminal:
                        return event
    except TimeoutError:
        pass
    raise RunDidNotEnd(
        f"run {run_id!r} did not end within {timeout:g}s; is a worker running it "
        "(running_worker(), agents-run worker)? or pass a larger timeout"
    )
