from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator

import pytest

from agents_run import (
    Infra,
    InvalidArgument,
    RunEvent,
    RunNotFound,
    StreamIdleTimeout,
    drain_outbox_for_run,
    publish_pending_outbox_events_once,
    run_until_idle,
    run_worker_once,
    start_run,
    stream_run,
)
from pytest_agents_run.recording import open_subscription_run_ids
from tests.leaks import leaves_work_on_purpose

pytestmark = pytest.mark.deterministic


async def collect(events: AsyncIterator[RunEvent]) -> list[tuple[int, str]]:
    return [(event.seq, event.type) for event in [e async for e in events]]


async def until_subscribed(infra: Infra) -> None:
    """Until a stream started in a task has subscribed: at once in memory, after a round trip
    on Redis."""
    async with asyncio.timeout(5):
        while not open_subscription_run_ids(infra):  # noqa: ASYNC110 - the proxy has no event
            await asyncio.sleep(0.001)


async def test_a_finished_run_streams_whole_from_the_store(infra: Infra) -> None:
    run_id = await start_run("echo", {"text": "a b"})
    await run_until_idle()
    events = [e async for e in stream_run(run_id)]
    assert [(e.seq, e.type, e.data) for e in events] == [
        (1, "RunStarted", {"agent": "echo"}),
        (2, "RunStep", {"text": "a"}),
        (3, "RunStep", {"text": "b"}),
        (4, "RunFinished", {}),
    ]
    assert open_subscription_run_ids(infra) == []


async def test_from_seq_is_inclusive_and_past_the_end_yields_nothing(infra: Infra) -> None:
    run_id = await start_run("echo", {"text": "a b"})
    await run_until_idle()
    assert await collect(stream_run(run_id, from_seq=3)) == [(3, "RunStep"), (4, "RunFinished")]
    assert await collect(stream_run(run_id, from_seq=5)) == []
    assert await collect(stream_run(run_id, from_seq=500)) == []


@leaves_work_on_purpose
@pytest.mark.parametrize("from_seq", [0, -3, "2", 1.5, True])
async def test_a_bad_from_seq_raises_at_the_call(infra: Infra, from_seq: object) -> None:
    run_id = await start_run("echo", {})
    with pytest.raises(InvalidArgument, match="from_seq must be"):
        stream_run(run_id, from_seq)  # type: ignore[arg-type]


@leaves_work_on_purpose
@pytest.mark.parametrize("name", ["idle_timeout", "poll_interval"])
@pytest.mark.parametrize("seconds", [True, 0, -1, math.nan, "5"])
async def test_bad_timings_raise_at_the_call(infra: Infra, name: str, seconds: object) -> None:
    run_id = await start_run("echo", {})
    with pytest.raises(InvalidArgument, match=f"{name} must be seconds > 0, got {seconds!r}"):
        stream_run(run_id, **{name: seconds})  # type: ignore[arg-type]


async def test_an_unknown_run_raises_run_not_found(infra: Infra) -> None:
    with pytest.raises(RunNotFound):
        await collect(stream_run("run-404"))
    assert open_subscription_run_ids(infra) == []


async def test_a_stream_started_before_the_worker_gets_everything_live(infra: Infra) -> None:
    run_id = await start_run("echo", {"text": "a b c"})
    stream = asyncio.create_task(collect(stream_run(run_id, poll_interval=5)))
    await until_subscribed(infra)
    assert open_subscription_run_ids(infra) == [run_id]
    await run_worker_once()
    await publish_pending_outbox_events_once()
    assert await asyncio.wait_for(stream, 2) == [
        (1, "RunStarted"),
        (2, "RunStep"),
        (3, "RunStep"),
        (4, "RunStep"),
        (5, "RunFinished"),
    ]


@leaves_work_on_purpose
async def test_a_seq_the_bus_skipped_is_read_from_the_store(infra: Infra) -> None:
    run_id = await start_run("echo", {"text": "a b"})
    # poll_interval is long, so only the gap itself can make the stream re-read the store.
    stream = asyncio.create_task(collect(stream_run(run_id, poll_interval=30)))
    await until_subscribed(infra)  # the store was empty
    await run_worker_once()
    stored = await infra.store.read_events(run_id)
    for seq in (1, 1, 3):  # 1 twice (a republished row), 2 dropped by the bus
        await infra.bus.publish(stored[seq - 1])
    assert await asyncio.wait_for(stream, 2) == [
        (1, "RunStarted"),
        (2, "RunStep"),
        (3, "RunStep"),
        (4, "RunFinished"),
    ]


@leaves_work_on_purpose
async def test_events_the_bus_never_carried_are_found_by_polling_the_store(
    infra: Infra,
) -> None:
    run_id = await start_run("echo", {"text": "a"})
    stream = asyncio.create_task(collect(stream_run(run_id, poll_interval=0.01)))
    await until_subscribed(infra)
    await run_worker_once()  # appended, never published: only the store has them
    assert await asyncio.wait_for(stream, 2) == [
        (1, "RunStarted"),
        (2, "RunStep"),
        (3, "RunFinished"),
    ]


@leaves_work_on_purpose
async def test_a_stale_event_republished_often_does_not_postpone_the_store_read(
    infra: Infra,
) -> None:
    # The bus carries only seq 1, again and again, faster than poll_interval; seqs 2 and 3 are
    # only in the store. Each stale message used to restart the silence timer, starving the stream.
    run_id = await start_run("echo", {"text": "a"})
    stream = asyncio.create_task(collect(stream_run(run_id, poll_interval=0.05)))
    await until_subscribed(infra)
    await run_worker_once()  # appended, never published
    first = (await infra.store.read_events(run_id))[0]
    for _ in range(20):  # at least 0.2 s of republishing: four poll intervals
        await infra.bus.publish(first)
        await asyncio.sleep(0.01)
    assert stream.done(), "the stream never read the store while a stale event kept arriving"
    assert await stream == [(1, "RunStarted"), (2, "RunStep"), (3, "RunFinished")]


@leaves_work_on_purpose
async def test_a_stream_with_no_progress_raises_after_its_idle_timeout(infra: Infra) -> None:
    run_id = await start_run("echo", {"text": "a"})
    with pytest.raises(StreamIdleTimeout, match=f"run '{run_id}': no event after seq 0"):
        await collect(stream_run(run_id, idle_timeout=0.05, poll_interval=0.01))
    assert open_subscription_run_ids(infra) == []


async def test_leaving_a_stream_early_closes_its_subscription(infra: Infra) -> None:
    run_id = await start_run("echo", {"text": "a b c"})
    await run_until_idle()
    stream = stream_run(run_id)
    async for event in stream:
        if event.seq == 2:
            break
    await stream.aclose()  # type: ignore[attr-defined]
    assert open_subscription_run_ids(infra) == []


async def test_draining_one_run_feeds_its_live_stream(infra: Infra) -> None:
    run_id = await start_run("echo", {"text": "a"})
    stream = asyncio.create_task(collect(stream_run(run_id, from_seq=2, poll_interval=5)))
    await until_subscribed(infra)
    await run_worker_once()
    assert await drain_outbox_for_run(run_id) == 3
    assert await asyncio.wait_for(stream, 2) == [(2, "RunStep"), (3, "RunFinished")]


async def test_a_long_run_is_backfilled_in_pages(
    infra: Infra, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("agents_run.application.stream_run.BACKFILL_PAGE", 4)
    run_id = await start_run("echo", {"text": " ".join(f"w{i}" for i in range(10))})
    await run_until_idle()
    seqs = [seq for seq, _ in await collect(stream_run(run_id))]
    assert seqs == list(range(1, 13))  # RunStarted, 10 steps, RunFinished: three pages
    assert [seq for seq, _ in await collect(stream_run(run_id, from_seq=9))] == [9, 10, 11, 12]
