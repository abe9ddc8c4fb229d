"""What only the in-memory adapters promise: predictable ids and time, and test helpers."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from agents_run import (
    Infra,
    InMemoryEventBus,
    InMemoryQueue,
    InMemoryRunStore,
    InvalidArgument,
    ManualClock,
    RunEvent,
    RunNotFound,
    SequentialIds,
    publish_pending_outbox_events_once,
    run_until_idle,
    run_worker_once,
    start_run,
    use_infra,
)
from agents_run.ports import MAX_JOB_ATTEMPTS


def test_sequential_ids_count_from_one() -> None:
    ids = SequentialIds()
    assert [ids.new_run_id() for _ in range(2)] == ["run-000001", "run-000002"]
    assert SequentialIds(prefix="t-").new_run_id() == "t-000001"


def test_the_manual_clock_moves_only_when_told() -> None:
    clock = ManualClock(datetime(2030, 5, 1, tzinfo=UTC))
    assert clock.now() == clock.now() == datetime(2030, 5, 1, tzinfo=UTC)
    clock.advance(90)
    assert clock.now() == datetime(2030, 5, 1, 0, 1, 30, tzinfo=UTC)
    clock.set(datetime(2031, 1, 1, tzinfo=UTC))
    assert clock.now().year == 2031


async def test_the_bus_keeps_what_it_published_and_lists_open_subscriptions() -> None:
    bus = InMemoryEventBus()
    subscription = await bus.subscribe("run-1")
    event = RunEvent("run-1", 1, "RunStarted")
    await bus.publish(event)
    assert bus.published == [event]
    assert bus.open_subscriptions() == ["run-1"]
    await bus.aclose()
    assert bus.open_subscriptions() == []
    assert subscription.closed


async def test_requeue_active_puts_a_lost_workers_job_back_first_with_its_attempt() -> None:
    queue = InMemoryQueue()
    await queue.enqueue("run-1")
    await queue.enqueue("run-2")
    taken = await queue.take_next()
    assert taken is not None
    assert [job.run_id for job in queue.requeue_active()] == ["run-1"]
    again = await queue.take_next()
    assert again is not None
    assert (again.run_id, again.attempt) == ("run-1", 2)


async def test_a_job_is_retried_at_once_until_it_failed_max_attempts_times() -> None:
    queue = InMemoryQueue()
    await queue.enqueue("run-1")
    attempts = []
    while (job := await queue.take_next()) is not None:
        attempts.append(job.attempt)
        await queue.fail(job, "store down")
    assert attempts == list(range(1, MAX_JOB_ATTEMPTS + 1))
    assert len(queue.failed) == MAX_JOB_ATTEMPTS


async def test_recover_stalled_takes_back_only_jobs_whose_taking_task_ended() -> None:
    queue = InMemoryQueue()
    await queue.enqueue("run-held")
    await queue.enqueue("run-lost")
    release = asyncio.Event()

    async def holds_its_job() -> None:
        assert await queue.take_next() is not None
        await release.wait()

    async def drops_its_job() -> None:
        assert await queue.take_next() is not None  # ends without completing or failing it

    holder = asyncio.create_task(holds_its_job())
    await asyncio.sleep(0)
    await asyncio.create_task(drops_its_job())
    assert await queue.recover_stalled() == ["run-lost"]
    assert await queue.recover_stalled() == []
    release.set()
    await holder
    assert await queue.recover_stalled() == ["run-held"]


async def test_a_store_with_a_retention_bound_forgets_the_oldest_ended_runs_once_published() -> (
    None
):
    store = InMemoryRunStore(max_finished_runs=2)
    infra = Infra(bus=InMemoryEventBus(), queue=InMemoryQueue(), store=store)
    with use_infra(infra):
        first, second, third = [await start_run("echo", {"text": "a"}) for _ in range(3)]
        await run_until_idle()
        assert store.run_ids() == [second, third]
        fourth = await start_run("echo", {"text": "b"})
        assert await run_worker_once()  # ended, its events not yet published
        assert store.run_ids() == [second, third, fourth]
        await publish_pending_outbox_events_once()
        assert store.run_ids() == [third, fourth]
        with pytest.raises(RunNotFound):
            await store.get_run(first)


def test_a_retention_bound_must_be_a_count() -> None:
    with pytest.raises(InvalidArgument, match="max_finished_runs must be an int >= 0"):
        InMemoryRunStore(max_finished_runs=-1)
