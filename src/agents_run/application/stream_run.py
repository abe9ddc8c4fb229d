"""Stream a run: backfill from the store, then tail the bus, each seq exactly once and in order."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from typing import TypeVar

from agents_run.application.infra import Infra, get_infra
from agents_run.arguments import require_positive_int, require_seconds
from agents_run.domain.events import RunEvent
from agents_run.errors import InfraUnavailable, StreamIdleTimeout

log = logging.getLogger("agents_run.stream")
T = TypeVar("T")

# Longer than the worst a run's worker takes to recover: a store outage ridden out (30 s), then
# a lapsed lease taken over (one lease, 4 s by default, plus a check), with room to spare.
DEFAULT_IDLE_TIMEOUT = 120.0
DEFAULT_POLL_INTERVAL = 1.0
_MAX_RETRY_DELAY = 2.0
# Events per store read of a backfill: a long run is read in pages (keyset on its seq), so a
# stream holds one page at a time and its cost per event stays that of a short run.
BACKFILL_PAGE = 1000


def stream_run(
    run_id: str,
    from_seq: int | None = None,
    *,
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
    poll_interval: float = DEFAULT_POLL_INTERVAL,
) -> AsyncIterator[RunEvent]:
    """Events of ``run_id`` with seq >= ``from_seq`` (None means 1), ending after the terminal one.

    Subscribes before it reads the store, so nothing falls between backfill and live tail; where
    the live feed skips a seq (pub/sub is at-most-once) it re-reads the store, and it re-reads it
    every ``poll_interval`` seconds of silence too. Where the store does not answer
    (``InfraUnavailable``) it retries with backoff, and raises that error only once
    ``idle_timeout`` seconds passed without a new event. Raises ``StreamIdleTimeout`` after
    ``idle_timeout`` seconds without a new event (also where a store or bus call has not
    answered by then: no wait outlasts it), ``RunNotFound`` for an unknown run. Arguments are
    checked here, at the call, before anything is awaited.
    """
    if from_seq is not None:
        require_positive_int(from_seq, "from_seq")
    require_seconds(idle_timeout, "idle_timeout", positive=True)
    require_seconds(poll_interval, "poll_interval", positive=True)
    return _stream(get_infra(), run_id, from_seq or 1, idle_timeout, poll_interval)


async def _stream(
    infra: Infra, run_id: str, next_seq: int, idle_timeout: float, poll_interval: float
) -> AsyncIterator[RunEvent]:
    last_progress = time.monotonic()

    def idle(why: str) -> StreamIdleTimeout:
        return StreamIdleTimeout(
            f"run {run_id!r}: no event after seq {next_seq - 1} for {idle_timeout:g}s; {why} "
            "(or pass a larger idle_timeout)"
        )

    async def retrying(read: Callable[[], Awaitable[T]]) -> T:
        give_up_at = last_progress + idle_timeout
        return await _retrying(read, run_id, give_up_at=give_up_at, hung=idle)

    await retrying(lambda: infra.store.get_run(run_id))  # RunNotFound before subscribing
    subscription = await retrying(lambda: infra.bus.subscribe(run_id))
    try:
        while True:
            # Read the status before the events: a run that was terminal then has all its
            # events in this read, so returning after it cannot miss the terminal event.
            run = await retrying(lambda: infra.store.get_run(run_id))
            while True:
                page = await retrying(
                    partial(infra.store.read_events, run_id, next_seq, BACKFILL_PAGE)
                )
                for event in page:
                    yield event
                    next_seq = event.seq + 1
                    last_progress = time.monotonic()
                    if event.is_terminal:
                        return
                if len(page) < BACKFILL_PAGE:
                    break
            if run.status.is_terminal:
                return  # from_seq lies past the end of a finished run
            # Live: take events straight from the bus while they arrive in order. Only progress
            # (the next seq) postpones the store re-read: a stale or duplicate message arriving
            # every so often must not starve the stream of what the bus dropped.
            reread_at = time.monotonic() + poll_interval
            while True:
                wait = reread_at - time.monotonic()
                live = await subscription.next_event(timeout=wait) if wait > 0 else None
                if live is None:
                    if time.monotonic() - last_progress > idle_timeout:
                        raise idle("is a worker and an outbox publisher running?")
                    break  # silence: re-read the store in case the bus dropped something
                if live.seq < next_seq:
                    continue  # already delivered (backfill overlap or a republished row)
                if live.seq > next_seq:
                    break  # gap: the store has the missing seqs, since rows publish after commit
                yield live
                next_seq += 1
                last_progress = time.monotonic()
                reread_at = last_progress + poll_interval
                if live.is_terminal:
                    return
    finally:
        await subscription.aclose()


async def _retrying(
    read: Callable[[], Awaitable[T]],
    run_id: str,
    *,
    give_up_at: float,
    hung: Callable[[str], StreamIdleTimeout],
) -> T:
    """``read()``, retried with backoff while the infrastructure is unavailable, until
    ``give_up_at`` (monotonic seconds); then its error is raised. A read still unanswered then
    (a hung store) raises ``hung(...)`` at ``give_up_at``: no wait holds the stream past it."""
    delay = 0.1
    while True:
        deadline = asyncio.timeout(max(give_up_at - time.monotonic(), 0.0))
        try:
            async with deadline:
                return await read()
        except InfraUnavailable as error:
            if time.monotonic() + delay > give_up_at:
                raise
            log.warning("stream of run %s: %s; retrying in %.1fs", run_id, error, delay)
        except TimeoutError:
            if not deadline.expired():
                raise
            raise hung("the store (or the bus) did not answer in time: is it reachable?") from None
        await asyncio.sleep(delay)
        delay = min(delay * 2, _MAX_RETRY_DELAY)
