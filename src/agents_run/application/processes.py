"""The long-running processes: the worker's loops and the outbox publisher, until told to stop,
retrying with backoff where the infrastructure fails."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable

from agents_run.application.failures import log_infra_error
from agents_run.application.infra import get_infra
from agents_run.application.leases import RENEWALS_PER_LEASE
from agents_run.application.outbox_publisher import (
    delete_published_outbox_rows,
    publish_pending_outbox_events_once,
)
from agents_run.application.run_worker import run_worker_once
from agents_run.application.sweep_runs import (
    DEFAULT_ORPHAN_AFTER,
    DEFAULT_REQUEUE_AFTER,
    sweep_orphaned_runs,
)
from agents_run.application.take_over_runs import find_lapsed_runs, take_over_run
from agents_run.arguments import require_positive_int, require_seconds
from agents_run.domain.events import Run

log = logging.getLogger("agents_run.worker")

MAX_BACKOFF = 5.0
# How often an idle publisher runs the retention job of published outbox rows.
RETENTION_INTERVAL = 60.0


class _LapsedRuns:
    """The runs the last lease check found lapsed, waiting for a free worker loop; ``found``
    is set while there are any, to wake idle loops."""

    def __init__(self) -> None:
        self._runs: deque[Run] = deque()
        self.found = asyncio.Event()

    def replace(self, runs: Iterable[Run]) -> None:
        self._runs = deque(runs)
        if self._runs:
            self.found.set()
        else:
            self.found.clear()

    def next(self) -> Run | None:
        if not self._runs:
            return None
        run = self._runs.popleft()
        if not self._runs:
            self.found.clear()
        return run


async def serve_worker(
    *,
    draining: asyncio.Event,
    stop: asyncio.Event,
    concurrency: int = 1,
    idle_poll: float = 0.5,
    stalled_check_interval: float = 30.0,
    orphan_after: float = DEFAULT_ORPHAN_AFTER,
    sweep_interval: float = 30.0,
    lease_check_interval: float | None = None,
) -> int:
    """Run ``concurrency`` worker loops until ``draining`` is set; return the runs they executed
    (queued jobs and take-overs).

    Once ``draining`` is set no new job is taken; runs in progress go on until they end or until
    ``stop`` is set, when they end at their next step (see ``run_worker_once``). An error from
    the infrastructure is logged and retried with backoff instead of ending the process. Every
    ``stalled_check_interval`` seconds the queue is asked to recover jobs of vanished workers,
    and every ``sweep_interval`` seconds the runs with no live job that have not changed for
    ``orphan_after`` seconds are ended (``sweep_orphaned_runs``); after a worker loop failed
    or the queue saw signs of lost jobs (``may_have_lost_jobs``: Redis may have restarted
    without them), the queued runs with no live job are enqueued again as soon as the
    infrastructure answers. Every
    ``lease_check_interval`` seconds (by default a fifth of the infra's lease) the runs whose
    lease lapsed are listed (``find_lapsed_runs``), and each loop that is free takes one over
    (``take_over_run``) before it takes another job: a take-over is executed like a job, within
    ``concurrency``, and drained and stopped like one.
    """
    require_positive_int(concurrency, "concurrency")
    require_seconds(idle_poll, "idle_poll", positive=True)
    require_seconds(stalled_check_interval, "stalled_check_interval", positive=True)
    require_seconds(orphan_after, "orphan_after")
    if lease_check_interval is None:
        lease_check_interval = get_infra().lease_seconds / RENEWALS_PER_LEASE
    require_seconds(lease_check_interval, "lease_check_interval", positive=True)
    require_seconds(sweep_interval, "sweep_interval", positive=True)

    lapsed = _LapsedRuns()
    # Set where the infrastructure failed a worker loop, or the queue saw signs of lost jobs
    # (Redis restarted without them): the queued runs with no live job are enqueued again as
    # soon as it answers, not a sweep_interval later (idempotent: a needless sweep is a query).
    jobs_maybe_lost = asyncio.Event()

    async def worker_loop(index: int) -> int:
        jobs = 0
        backoff = idle_poll
        while not draining.is_set():
            try:
                if (run := lapsed.next()) is not None:
                    if await take_over_run(run, stop=stop):
                        jobs += 1
                    backoff = idle_poll
                    continue
                took = await run_worker_once(stop=stop)
                _note_lost_jobs(jobs_maybe_lost)
                backoff = idle_poll
                if took:
                    jobs += 1
                    continue
            except Exception as error:
                log_infra_error(
                    f"worker loop {index}: job failed; retrying in {backoff:.1f}s", error
                )
                jobs_maybe_lost.set()
                backoff = min(backoff * 2, MAX_BACKOFF)
            await _wait(draining, backoff, also=lapsed.found)
        return jobs

    async def every(interval: float, doing: str, chore: Callable[[], Awaitable[object]]) -> None:
        while not draining.is_set():
            try:
                await chore()
            except Exception as error:
                log_infra_error(f"{doing} failed; trying again later", error)
            await _wait(draining, interval)

    async def recover_stalled_jobs() -> None:
        await get_infra().queue.recover_stalled()

    async def find_lapsed() -> None:
        lapsed.replace(await find_lapsed_runs())

    chores = [
        asyncio.create_task(every(lease_check_interval, "listing lapsed runs", find_lapsed)),
        asyncio.create_task(
            every(stalled_check_interval, "checking for stalled jobs", recover_stalled_jobs)
        ),
        asyncio.create_task(
            _sweep(draining, jobs_maybe_lost, orphan_after, sweep_interval, retry=idle_poll)
        ),
    ]
    try:
        return sum(await asyncio.gather(*(worker_loop(i) for i in range(concurrency))))
    finally:
        for chore in chores:  # also when a loop raised: the chores end with the loops
            chore.cancel()
        for chore in chores:
            with contextlib.suppress(asyncio.CancelledError):
                await chore


async def serve_publisher(*, stop: asyncio.Event, idle_wait: float = 1.0) -> int:
    """Publish the outbox until ``stop`` is set; return how many events were published.

    Between passes that find nothing it sleeps in ``store.wait_for_outbox``, which the store
    ends as soon as rows are appended (PostgreSQL NOTIFY, ...): no busy loop, and no pass is
    more than ``idle_wait`` seconds late even where a wake-up was lost. Once ``stop`` is set
    the batch in hand is finished and marked, then it returns. When idle, at most every
    ``RETENTION_INTERVAL`` seconds, it deletes the rows published longer ago than the infra's
    ``outbox_retention_seconds`` (``delete_published_outbox_rows``).
    """
    require_seconds(idle_wait, "idle_wait", positive=True)
    store = get_infra().store
    published = 0
    backoff = idle_wait
    retention_due = time.monotonic()
    while not stop.is_set():
        try:
            count = await publish_pending_outbox_events_once(stop=stop)
            published += count
            backoff = idle_wait
            if count == 0 and time.monotonic() >= retention_due:
                retention_due = time.monotonic() + RETENTION_INTERVAL
                deleted = await delete_published_outbox_rows()
                if deleted:
                    log.info("publisher: deleted %d published outbox rows", deleted)
            if count == 0:
                await store.wait_for_outbox(idle_wait)
        except Exception as error:
            log_infra_error(f"publisher: publishing failed; retrying in {backoff:.1f}s", error)
            await _wait(stop, backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)
    return published


def _note_lost_jobs(jobs_maybe_lost: asyncio.Event) -> None:
    if get_infra().queue.may_have_lost_jobs():
        jobs_maybe_lost.set()


async def _sweep(
    draining: asyncio.Event,
    jobs_maybe_lost: asyncio.Event,
    orphan_after: float,
    interval: float,
    *,
    retry: float,
) -> None:
    """``sweep_orphaned_runs`` every ``interval`` seconds, and at once (retried every ``retry``
    seconds until it succeeds) with no requeue delay once ``jobs_maybe_lost`` is set."""
    while not draining.is_set():
        after_failure = jobs_maybe_lost.is_set()
        jobs_maybe_lost.clear()
        try:
            await sweep_orphaned_runs(
                older_than=orphan_after,
                requeue_after=0.0 if after_failure else DEFAULT_REQUEUE_AFTER,
            )
        except Exception as error:
            log_infra_error("sweeping orphaned runs failed; trying again later", error)
            if after_failure:
                jobs_maybe_lost.set()  # again once the infrastructure answers
        await _wait(draining, interval, also=jobs_maybe_lost)
        if jobs_maybe_lost.is_set():
            await _wait(draining, retry)  # not in a tight loop while an outage lasts


async def _wait(event: asyncio.Event, timeout: float, *, also: asyncio.Event | None = None) -> None:
    """Until ``event`` (or ``also``) is set, or ``timeout`` seconds."""
    if also is None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout)
        return
    waits = [asyncio.ensure_future(event.wait()), asyncio.ensure_future(also.wait())]
    try:
        await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()
