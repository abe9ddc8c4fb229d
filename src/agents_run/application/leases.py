"""Leases: a worker holds each run it executes for a while, renews the hold while it works, and
names its attempt (the fencing token) in every append, so that the store refuses it once the
lease lapsed and another worker took the run over.

A held run also rides out a store outage: an append or read that fails with
``InfraUnavailable`` is retried with bounded backoff for up to ``store_outage_bound`` seconds,
and an append whose reply was lost is recognised in the store instead of being made twice.

Renewal runs on the event loop's own time (it is the worker's heartbeat, not the run's time),
``lease_until`` on the infra's clock: under ``ManualClock`` a lease lapses only when a test
moves the clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

from agents_run.application.infra import Infra
from agents_run.domain.events import EventType, Run, RunEvent, RunStatus
from agents_run.domain.journal import StepRecord
from agents_run.domain.json_data import JsonObject
from agents_run.errors import InfraUnavailable, StaleAttempt

log = logging.getLogger("agents_run.worker")
T = TypeVar("T")

# Renewals per lease: a worker misses four in a row (a long GC pause, a store outage) before its
# lease lapses, and another worker takes the run within about one lease of a crash.
RENEWALS_PER_LEASE = 5
RELEASE_TIMEOUT = 2.0
# How long a worker retries the store for a run it holds before it gives up on the run: longer
# than a PostgreSQL restart or failover takes, shorter than a client's stream waits (120 s).
DEFAULT_STORE_OUTAGE_BOUND = 30.0
_FIRST_RETRY_DELAY = 0.1
_MAX_RETRY_DELAY = 2.0


@dataclass
class HeldRun:
    """The run the current task executes: its fencing token and the last seq it appended."""

    run_id: str
    attempt: int
    last_seq: int
    store_outage_bound: float


_held: ContextVar[HeldRun | None] = ContextVar("agents_run_held_run", default=None)


def held_run() -> HeldRun | None:
    """The run whose lease the current task holds, or None outside a held run."""
    return _held.get()


async def acquire_lease(infra: Infra, run_id: str) -> Run | None:
    """Take ``run_id`` for a new attempt for ``infra.lease_seconds``; None where it has ended or
    another worker's lease on it is live."""
    now = infra.clock.now()
    return await infra.store.acquire_lease(
        run_id, at=now, until=now + timedelta(seconds=infra.lease_seconds)
    )


@contextlib.asynccontextmanager
async def holding_lease(
    infra: Infra, run: Run, *, store_outage_bound: float = DEFAULT_STORE_OUTAGE_BOUND
) -> AsyncIterator[HeldRun]:
    """Renew the lease of ``run`` (as ``acquire_lease`` returned it) while the block runs, and
    fence the block's appends with its attempt. On the way out the lease is released, so that
    a run left unfinished (the worker was cancelled, the store failed) can be taken at once."""
    held = HeldRun(run.id, run.attempt, run.last_seq, store_outage_bound)
    loop = asyncio.get_running_loop()
    renewal: asyncio.Task[None] | None = None

    def start_renewing() -> None:
        nonlocal renewal
        renewal = loop.create_task(
            _renew_until_lost(infra, run.id, run.attempt), name=f"agents-run lease {run.id}"
        )

    # A timer until the first renewal is due: most runs in memory end long before it, and then
    # cost no task.
    first_renewal = loop.call_later(_renewal_interval(infra), start_renewing)
    token = _held.set(held)
    try:
        yield held
    finally:
        _held.reset(token)
        first_renewal.cancel()
        if renewal is not None:
            renewal.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewal
        # Best effort, and bounded: where the store does not answer, the lease lapses anyway.
        with contextlib.suppress(Exception):
            async with asyncio.timeout(RELEASE_TIMEOUT):
                await infra.store.renew_lease(run.id, run.attempt, until=infra.clock.now())


async def append_as_holder(
    infra: Infra,
    run_id: str,
    type: str,
    data: JsonObject,
    *,
    expected_status: RunStatus | None = None,
) -> RunEvent:
    """Append to ``run_id``; where the current task holds it, fenced with its attempt and
    retried through a store outage (see the module's docstring)."""
    held = _held.get()
    if held is None or held.run_id != run_id:
        return await infra.store.append_event(
            run_id, type, data, at=infra.clock.now(), expected_status=expected_status
        )

    async def append() -> RunEvent:
        return await infra.store.append_event(
            run_id,
            type,
            data,
            at=infra.clock.now(),
            expected_status=expected_status,
            attempt=held.attempt,
        )

    async def committed_before_the_reply_was_lost() -> RunEvent | None:
        run = await infra.store.get_run(run_id)
        if run.attempt != held.attempt:
            raise StaleAttempt(
                f"run {run_id!r} is held by attempt {run.attempt}, not {held.attempt}: its lease "
                "ran out during a store outage and another worker took the run"
            )
        if run.last_seq <= held.last_seq:
            return None
        (event,) = await infra.store.read_events(run_id, held.last_seq + 1, limit=1)
        if event.type == EventType.RUN_CANCELLED and EventType(type).is_terminal:
            return event  # our end, turned into RunCancelled by a cancel request
        return event if (event.type, event.data) == (type, data) else None

    event = await _retrying(append, held, f"appending {type}", committed_before_the_reply_was_lost)
    held.last_seq = event.seq
    return event


async def read_as_holder(infra: Infra, run_id: str) -> Run:
    """The run, read again; retried through a store outage where the current task holds it."""
    return await retried_as_holder(run_id, lambda: infra.store.get_run(run_id), "reading the run")


async def retried_as_holder(run_id: str, read: Callable[[], Awaitable[T]], doing: str) -> T:
    """``read()`` (a store call that changes nothing); retried through a store outage where the
    current task holds ``run_id``."""
    held = _held.get()
    if held is None or held.run_id != run_id:
        return await read()
    return await _retrying(read, held, doing)


async def record_step_as_holder(infra: Infra, record: StepRecord) -> None:
    """Record a journal entry; where the current task holds its run, retried through a store
    outage, and an entry whose reply was lost is found in the journal, not recorded twice."""
    held = _held.get()
    if held is None or held.run_id != record.run_id:
        await infra.store.record_step(record)
        return

    async def write() -> bool:
        await infra.store.record_step(record)
        return True

    async def recorded_before_the_reply_was_lost() -> bool | None:
        journal = await infra.store.read_steps(record.run_id)
        mine = [(e.index, e.attempt, e.name) for e in journal]
        return True if (record.index, record.attempt, record.name) in mine else None

    await _retrying(
        write, held, f"recording step {record.index}", recorded_before_the_reply_was_lost
    )


async def _retrying(
    operation: Callable[[], Awaitable[T]],
    held: HeldRun,
    doing: str,
    already_done: Callable[[], Awaitable[T | None]] | None = None,
) -> T:
    deadline = time.monotonic() + held.store_outage_bound
    delay = _FIRST_RETRY_DELAY
    unsure = False  # a failed try may have reached the store: only ``already_done`` can tell
    while True:
        try:
            if unsure and already_done is not None:
                done = await already_done()
                if done is not None:
                    return done
            unsure = False
            return await operation()
        except InfraUnavailable as error:
            # Where the check itself failed, the next try checks again before doing it again.
            unsure = True
            if time.monotonic() + delay > deadline:
                log.warning(
                    "run %s: the store stayed unavailable for %gs while %s; giving up",
                    held.run_id,
                    held.store_outage_bound,
                    doing,
                )
                raise
            log.warning(
                "run %s: store unavailable while %s; retrying in %.1fs (%s)",
                held.run_id,
                doing,
                delay,
                error,
            )
        await asyncio.sleep(delay)
        delay = min(delay * 2, _MAX_RETRY_DELAY)


def _renewal_interval(infra: Infra) -> float:
    return infra.lease_seconds / RENEWALS_PER_LEASE


async def _renew_until_lost(infra: Infra, run_id: str, attempt: int) -> None:
    """Renews now (the first renewal is due), then every renewal interval."""
    seconds = infra.lease_seconds
    failing = False
    while True:
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
        else:
            if failing:
                log.info("run %s: its lease is renewed again", run_id)
                failing = False
            if not renewed:
                # Taken over, or ended: the next append says which, and the worker acts on it.
                return
        await asyncio.sleep(_renewal_interval(infra))
