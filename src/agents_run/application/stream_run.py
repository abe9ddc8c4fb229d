"""Stream a run: backfill from the store, then tail the bus, each seq exactly once and in order."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from agents_run.application.infra import Infra, get_infra
from agents_run.arguments import require_positive_int, require_seconds
from agents_run.domain.events import RunEvent
from agents_run.errors import StreamIdleTimeout

DEFAULT_IDLE_TIMEOUT = 60.0
DEFAULT_POLL_INTERVAL = 1.0


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
    every ``poll_interval`` seconds of silence too. Raises ``StreamIdleTimeout`` after
    ``idle_timeout`` seconds without a new event, ``RunNotFound`` for an unknown run. Arguments are
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
    await infra.store.get_run(run_id)  # RunNotFound before subscribing
    subscription = await infra.bus.subscribe(run_id)
    try:
        last_progress = time.monotonic()
        while True:
            # Read the status before the events: a run that was terminal then has all its
            # events in this read, so returning after it cannot miss the terminal event.
            run = await infra.store.get_run(run_id)
            for event in await infra.store.read_events(run_id, next_seq):
                yield event
                next_seq = event.seq + 1
                last_progress = time.monotonic()
                if event.is_terminal:
                    return
            if run.status.is_terminal:
                return  # from_seq lies past the end of a finished run
            # Live: take events straight from the bus while they arrive in order.
            while True:
                live = await subscription.next_event(timeout=poll_interval)
                if live is None:
                    if time.monotonic() - last_progress > idle_timeout:
                        raise StreamIdleTimeout(
                            f"run {run_id!r}: no event after seq {next_seq - 1} for "
                            f"{idle_timeout:g}s; is a worker and an outbox publisher running? "
                            "(or pass a larger idle_timeout)"
                        )
                    break  # silence: re-read the store in case the bus dropped something
                if live.seq < next_seq:
                    continue  # already delivered (backfill overlap or a republished row)
                if live.seq > next_seq:
                    break  # gap: the store has the missing seqs, since rows publish after commit
                yield live
                next_seq += 1
                last_progress = time.monotonic()
                if live.is_terminal:
                    return
    finally:
        await subscription.aclose()
