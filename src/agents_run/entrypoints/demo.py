"""``agents-run demo``: the whole life of a few runs on the configured (default in-memory) infra."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable

from agents_run.application.cancel_run import cancel_run
from agents_run.application.infra import get_infra
from agents_run.application.outbox_publisher import publish_pending_outbox_events_once
from agents_run.application.run_worker import run_worker_once
from agents_run.application.start_run import start_run
from agents_run.application.stream_run import stream_run
from agents_run.domain.events import RunEvent
from agents_run.entrypoints.formatting import format_event


def _line(event: RunEvent) -> str:
    return "  " + format_event(event)


async def run_demo(say: Callable[[str], object]) -> int:
    say("== starting four echo runs")
    first = await start_run("echo", {"text": "the quick brown fox"})
    second = await start_run("echo", {"text": "jumps over the lazy dog"})
    cancelled = await start_run("echo", {"text": "this run is cancelled before it starts"})
    live = await start_run("echo", {"text": "streamed live while the worker runs"})
    for run_id in (first, second, cancelled, live):
        say(f"  started {run_id}")

    say(f"== cancelling {cancelled} while it is still queued")
    say(f"  cancel_run -> {await cancel_run(cancelled)}; again -> {await cancel_run(cancelled)}")

    say(f"== tailing {live} live while the worker and the publisher run")
    live_events: list[RunEvent] = []

    async def tail_live() -> None:
        async for event in stream_run(live, poll_interval=0.05, idle_timeout=10):
            live_events.append(event)
            say(_line(event) + "   (live)")

    tail = asyncio.create_task(tail_live())
    await asyncio.sleep(0)  # let the tail subscribe before any event is published
    while await run_worker_once():
        published = await publish_pending_outbox_events_once()
        say(f"  worker ran one job; publisher published {published} event(s)")
        await asyncio.sleep(0)  # let the tail print what was just published
    await asyncio.wait_for(tail, timeout=10)

    say(f"== {first} streamed from the start (backfill from the store)")
    async for event in stream_run(first):
        say(_line(event))

    say(f"== {second} streamed from seq 3 (backfill from the middle)")
    async for event in stream_run(second, from_seq=3):
        say(_line(event))

    say(f"== {cancelled} streamed from the start")
    async for event in stream_run(cancelled):
        say(_line(event))

    store = get_infra().store
    statuses: Counter[str] = Counter()
    total_events = 0
    for run_id in (first, second, cancelled, live):
        run = await store.get_run(run_id)
        statuses[run.status.value] += 1
        total_events += run.last_seq
    summary = ", ".join(f"{count} {status}" for status, count in sorted(statuses.items()))
    say(
        f"== summary: 4 runs ({summary}); {total_events} events appended; "
        f"{len(live_events)} received live; "
        f"{len(await store.pending_outbox())} outbox rows left unpublished"
    )
    return 0
