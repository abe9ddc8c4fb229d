"""The sweeper: ends the runs that nothing else will ever end, so that no run stays queued or
running forever, and queues again the runs that the store holds as queued but the queue lost.

The store is the truth. A queued run with no live job (Redis restarted without persistence, or
``start_run`` saved it but could not enqueue it) is enqueued again. A run is orphaned when it
has not changed for a while and the queue holds no live job for it and will take none: its job
failed all its attempts (the store or Redis was down for longer than the retries last), or a
started run of an older version (with no lease) lost its worker. No worker will take such a run
again, so a cancellation request alone cannot end it either: the sweeper records the end
instead. Running runs with a lease are not the sweeper's: ``take_over_lapsed_runs`` takes them
over once their lease lapses.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from agents_run.application.infra import get_infra
from agents_run.arguments import require_positive_int, require_seconds
from agents_run.domain.events import EventType, Run, RunStatus
from agents_run.domain.failures import FailureType, failure_data
from agents_run.domain.json_data import JsonObject
from agents_run.errors import InvalidTransition, StaleRunState

log = logging.getLogger("agents_run.sweeper")

# Well above the time between start_run saving a run and enqueueing its job (one connect
# timeout at most), and above any clock skew between the machines.
DEFAULT_ORPHAN_AFTER = 600.0
# A queued run with no live job is enqueued again after this long: enqueueing is idempotent, so
# this only needs to exceed the gap between start_run saving the run and adding its job.
DEFAULT_REQUEUE_AFTER = 30.0


async def sweep_orphaned_runs(
    *,
    older_than: float = DEFAULT_ORPHAN_AFTER,
    requeue_after: float = DEFAULT_REQUEUE_AFTER,
    limit: int = 100,
) -> list[str]:
    """Queue again the queued runs with no live job, not updated for ``requeue_after`` seconds;
    end the runs not updated for ``older_than`` seconds that have no live job and get none;
    return the ids of the runs it ended.

    Looks at up to ``limit`` such runs, oldest first. A ``queued`` one is enqueued again (the
    queue ignores it where it already holds a job for the run, finished or failed); where that
    gives it no live job (its job failed all its attempts) it ends ``RunFailed`` with
    ``Orphaned`` once ``older_than`` has passed. A ``running`` one without a lease ends
    ``RunFailed`` with ``WorkerLost``; either ends ``RunCancelled`` where its cancellation was
    requested. A run that a worker or a canceller moves meanwhile is left to them. Worker
    processes call this periodically; calling it from several processes at once is safe (each
    run is ended once).
    """
    require_seconds(older_than, "older_than")
    require_seconds(requeue_after, "requeue_after")
    require_positive_int(limit, "limit")
    infra = get_infra()
    now = infra.clock.now()
    cutoff = now - timedelta(seconds=older_than)
    requeue_cutoff = now - timedelta(seconds=min(requeue_after, older_than))
    ended: list[str] = []
    for listed in await infra.store.list_stale_runs(updated_before=requeue_cutoff, limit=limit):
        if listed.lease_is_live(now) or (
            listed.status is RunStatus.RUNNING and listed.lease_until is not None
        ):
            continue  # a worker holds it, or the lease take-over will
        if await infra.queue.has_live_job(listed.id):
            continue  # a worker holds it, or will take it: not lost, only slow or waiting
        if listed.status is RunStatus.QUEUED and await _enqueued_again(listed):
            continue
        # Read again: a cancel_run since the listing asked for RunCancelled, not RunFailed.
        run = await infra.store.get_run(listed.id)
        if run.status.is_terminal or run.updated_at >= cutoff:
            continue
        event_type, data = _ending(run)
        try:
            # The status we read: a worker or cancel_run that moved the run meanwhile wins.
            await infra.store.append_event(
                run.id, event_type, data, at=infra.clock.now(), expected_status=run.status
            )
        except (StaleRunState, InvalidTransition):
            continue
        log.warning(
            "run %s ended %s (%s): it was %s, last updated %s, and the queue holds no live job "
            "for it",
            run.id,
            event_type,
            data.get("error_type", "cancellation requested"),
            run.status.value,
            run.updated_at.isoformat(),
        )
        ended.append(run.id)
    return ended


async def _enqueued_again(run: Run) -> bool:
    """Enqueue ``run`` again; True where the queue now holds a live job for it."""
    queue = get_infra().queue
    await queue.enqueue(run.id)
    if not await queue.has_live_job(run.id):
        return False  # the queue still knows its dead job: enqueueing it again did nothing
    log.warning(
        "run %s is queued in the store but its job was missing (lost in a Redis restart, or "
        "never added): enqueued it again",
        run.id,
    )
    return True


def _ending(run: Run) -> tuple[EventType, JsonObject]:
    if run.cancel_requested:
        return EventType.RUN_CANCELLED, {}
    if run.status is RunStatus.RUNNING:
        return EventType.RUN_FAILED, failure_data(
            FailureType.WORKER_LOST,
            "no worker holds this run any more (its job failed all its attempts or was lost); "
            "start a new run to retry",
        )
    return EventType.RUN_FAILED, failure_data(
        FailureType.ORPHANED,
        "no worker will take this run (its job was never added, failed all its attempts, or "
        "was lost); start it again",
    )
