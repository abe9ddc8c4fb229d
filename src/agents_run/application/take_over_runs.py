"""Take over the runs whose worker stopped renewing its lease (it crashed, hung, or lost the
store for longer than a lease), straight from the store: no need to wait for the queue to
notice that the job lost its worker.
"""

from __future__ import annotations

import logging

from agents_run.application.infra import get_infra
from agents_run.application.leases import acquire_lease
from agents_run.application.run_worker import execute_taken_run
from agents_run.arguments import require_positive_int

log = logging.getLogger("agents_run.worker")


async def take_over_lapsed_runs(*, limit: int = 100) -> list[str]:
    """Take the running runs whose lease lapsed (up to ``limit``, the longest lapsed first) and
    execute them here as the next attempt; their ids.

    The next attempt of a run that was running resumes it by replay (``RunResumed``), or ends
    it ``RunFailed`` (``WorkerLost``) where its agent has ``resume=False``, or ``RunCancelled``
    where that was asked for. Worker
    processes call this every fraction of a lease; calling it from several at once is safe:
    each lapsed lease is taken by one of them, and an old attempt can no longer append.
    """
    require_positive_int(limit, "limit")
    infra = get_infra()
    taken_over: list[str] = []
    for lapsed in await infra.store.list_lapsed_leases(at=infra.clock.now(), limit=limit):
        run = await acquire_lease(infra, lapsed.id)
        if run is None:
            continue  # another worker took it first, or it ended meanwhile
        log.warning(
            "run %s: the lease of attempt %d lapsed at %s; attempt %d takes it over",
            run.id,
            lapsed.attempt,
            lapsed.lease_until.isoformat() if lapsed.lease_until else "?",
            run.attempt,
        )
        await execute_taken_run(infra, run)
        taken_over.append(run.id)
    return taken_over
