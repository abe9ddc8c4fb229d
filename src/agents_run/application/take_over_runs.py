"""Take over the runs whose worker stopped renewing its lease (it crashed, hung, or lost the
store for longer than a lease), straight from the store: no need to wait for the queue to
notice that the job lost its worker.
"""

from __future__ import annotations

import asyncio
import logging

from agents_run.application.infra import get_infra
from agents_run.application.leases import acquire_lease
from agents_run.application.run_worker import execute_taken_run
from agents_run.arguments import require_positive_int
from agents_run.domain.events import Run

log = logging.getLogger("agents_run.worker")


async def find_lapsed_runs(*, limit: int = 100) -> list[Run]:
    """The running runs whose lease lapsed now (up to ``limit``, the longest lapsed first),
    as candidates for ``take_over_run``; nothing is taken yet."""
    require_positive_int(limit, "limit")
    infra = get_infra()
    return await infra.store.list_lapsed_leases(at=infra.clock.now(), limit=limit)


async def take_over_run(lapsed: Run, *, stop: asyncio.Event | None = None) -> bool:
    """Take ``lapsed`` (as ``find_lapsed_runs`` listed it) and execute it here as its next
    attempt; False where another worker took it first or it ended meanwhile.

    The next attempt of a run that was running resumes it by replay (``RunResumed``), or ends
    it ``RunFailed`` (``WorkerLost``) where its agent has ``resume=False``, or ``RunCancelled``
    where that was asked for. ``stop`` is ``run_worker_once``'s: set, the run ends at its next
    step (``WorkerShutdown``). Calling this from several workers at once is safe: one of them
    gets the lease, and an old attempt can no longer append.
    """
    infra = get_infra()
    run = await acquire_lease(infra, lapsed.id)
    if run is None:
        return False
    log.warning(
        "run %s: the lease of attempt %d lapsed at %s; attempt %d takes it over",
        run.id,
        lapsed.attempt,
        lapsed.lease_until.isoformat() if lapsed.lease_until else "?",
        run.attempt,
    )
    await execute_taken_run(infra, run, stop=stop)
    return True


async def take_over_lapsed_runs(*, limit: int = 100) -> list[str]:
    """Take the running runs whose lease lapsed (up to ``limit``, the longest lapsed first) and
    execute them here, one after the other; their ids.

    A worker process (``serve_worker``) does not call this: its free loops take the runs that
    ``find_lapsed_runs`` lists one each, within its concurrency. This is the one-shot form, for
    tests and scripts.
    """
    taken_over: list[str] = []
    for lapsed in await find_lapsed_runs(limit=limit):
        if await take_over_run(lapsed):
            taken_over.append(lapsed.id)
    return taken_over
