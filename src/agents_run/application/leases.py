"""Leases: a worker holds each run it executes for a while, renews the hold while it works, and
names its attempt (the fencing token) in every append, so that the store refuses it once the
lease lapsed and another worker took the run over.

Renewal runs on the event loop's own time (it is the worker's heartbeat, not the run's time),
``lease_until`` on the infra's clock: under ``ManualClock`` a lease lapses only when a test
moves the clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextvars import ContextVar
from datetime import timedelta

from agents_run.application.infra import Infra
from agents_run.domain.events import Run

log = logging.getLogger("agents_run.worker")

# Renewals per lease: a worker misses four in a row (a long GC pause, a store outage) before its
# lease lapses, and another worker takes the run within about one lease of a crash.
RENEWALS_PER_LEASE = 5

RELEASE_TIMEOUT = 2.0

# The attempt the current task holds, passed into every append it makes (see run_worker).
_held_attempt: ContextVar[int | None] = ContextVar("agents_run_held_attempt", default=None)


def held_attempt() -> int | None:
    """The attempt whose lease the current task holds, or None outside a held run."""
    return _held_attempt.get()


async def acquire_lease(infra: Infra, run_id: str) -> Run | None:
    """Take ``run_id`` for a new attempt for ``infra.lease_seconds``; None where it has ended or
    another worker's lease on it is live."""
    now = infra.clock.now()
    return await infra.store.acquire_lease(
        run_id, at=now, until=now + timedelta(seconds=infra.lease_seconds)
    )


@contextlib.asynccontextmanager
async def holding_lease(infra: Infra, run: Run) -> AsyncIterator[None]:
    """Renew the lease of ``run`` (as ``acquire_lease`` returned it) while the block runs, and
    fence the block's appends with its attempt. On the way out the lease is released, so that
    a run left unfinished (the worker was cancelled, the store failed) can be taken at once."""
    renewal = asyncio.create_task(
        _renew_until_lost(infra, run.id, run.attempt), name=f"agents-run lease {run.id}"
    )
    token = _held_attempt.set(run.attempt)
    try:
        yield
    finally:
        _held_attempt.reset(token)
        renewal.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renewal
        # Best effort, and bounded: where the store does not answer, the lease lapses anyway.
        with contextlib.suppress(Exception):
            async with asyncio.timeout(RELEASE_TIMEOUT):
                await infra.store.renew_lease(run.id, run.attempt, until=infra.clock.now())


async def _renew_until_lost(infra: Infra, run_id: str, attempt: int) -> None:
    seconds = infra.lease_seconds
    failing = False
    while True:
        await asyncio.sleep(seconds / RENEWALS_PER_LEASE)
        until = infra.clock.now() + timedelta(seconds=seconds)
        try:
            renewed = await infra.store.renew_lease(run_id, attempt, until=until)
        except Exception as error:
            if not failing:  # once per outage: the store's own errors say enough
                log.warning(
                    "run %s: could not renew its lease (%s: %s); retrying",
                    run_id,
                    type(error).__name__,
                    error,
                )
            failing = True
            continue
        if failing:
            log.info("run %s: its lease is renewed again", run_id)
            failing = False
        if not renewed:
            # Taken over, or ended: the next append says which, and the worker acts on it.
            return
