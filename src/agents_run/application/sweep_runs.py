"""The sweeper: ends the runs that nothing else will ever end, so that no run stays queued or
running forever.

A run is orphaned when it has not changed for a while and the queue holds no live job for it:
its job failed all its attempts (the store or Redis was down for longer than the retries last),
or ``start_run`` persisted it but could neither enqueue its job nor record ``EnqueueFailed``, or
a queue without persistence lost its job. No worker will take such a run again, so a
cancellation request alone cannot end it either: the sweeper records the end instead.
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


async def sweep_orphaned_runs(
    *, older_than: float = DEFAULT_ORPHAN_AFTER, limit: int = 100
) -> list[str]:
    """End the runs not updated for ``older_than`` seconds that have no live job; their ids.

    Looks at up to ``limit`` such runs, oldest first. A ``running`` one ends ``RunFailed`` with
    ``error_type`` ``WorkerLost``, a ``queued`` one ``RunFailed`` with ``Orphaned``; either ends
    ``RunCancelled`` where its cancellation was requested. A run that a worker or a canceller
    moves meanwhile is left to them. Worker processes call this periodically; calling it from
    several processes at once is safe (each run is ended once).
    """
    require_seconds(older_than, "older_than")
    require_positive_int(limit, "limit")
    infra = get_infra()
    cutoff = infra.clock.now() - timedelta(seconds=older_than)
    ended: list[str] = []
    for listed in await infra.store.list_stale_runs(updated_before=cutoff, limit=limit):
        if await infra.queue.has_live_job(listed.id):
            continue  # a worker holds it, or will take it: not lost, only slow or waiting
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
