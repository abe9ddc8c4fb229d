"""Every QueuePort adapter behaves alike."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from agents_run.errors import InvalidArgument
from agents_run.ports import MAX_JOB_ATTEMPTS, Job, QueueCounts, QueuePort

_ids = itertools.count(1)
RETRY_DEADLINE = 10.0


def run_id() -> str:
    return f"contract-queue-run-{next(_ids)}"


async def take_within_deadline(queue: QueuePort) -> Job:
    """The next job, waiting (a networked queue delays a failed job's retry) up to a deadline."""
    async with asyncio.timeout(RETRY_DEADLINE):
        while (job := await queue.take_next()) is None:  # noqa: ASYNC110 - nothing to await
            await asyncio.sleep(0.05)
    return job


async def test_jobs_are_taken_first_in_first_out(queue: QueuePort) -> None:
    runs = [run_id() for _ in range(3)]
    for run in runs:
        await queue.enqueue(run)
    taken = [await queue.take_next() for _ in runs]
    assert [job.run_id for job in taken if job] == runs
    assert all(job is not None and job.attempt == 1 for job in taken)


async def test_taking_from_an_empty_queue_returns_none_at_once(queue: QueuePort) -> None:
    assert await queue.take_next() is None
    assert await queue.counts() == QueueCounts(waiting=0, active=0)


async def test_a_run_is_enqueued_once(queue: QueuePort) -> None:
    run = run_id()
    await queue.enqueue(run)
    await queue.enqueue(run)
    assert await queue.counts() == QueueCounts(waiting=1, active=0)


async def test_counts_follow_take_complete_and_fail(queue: QueuePort) -> None:
    done, broken = run_id(), run_id()
    await queue.enqueue(done)
    await queue.enqueue(broken)
    first = await queue.take_next()
    assert first is not None
    assert await queue.counts() == QueueCounts(waiting=1, active=1)
    await queue.complete(first)
    second = await queue.take_next()
    assert second is not None
    assert second.run_id == broken
    await queue.fail(second, "RuntimeError: boom")
    assert await queue.counts() == QueueCounts(waiting=1, active=0)  # until it is retried


async def test_a_failed_job_is_taken_again_with_the_next_attempt(queue: QueuePort) -> None:
    run = run_id()
    await queue.enqueue(run)
    first = await queue.take_next()
    assert first is not None
    await queue.fail(first, "InfraUnavailable: store down")
    retry = await take_within_deadline(queue)
    assert (retry.run_id, retry.attempt) == (run, 2)
    await queue.complete(retry)
    assert await queue.counts() == QueueCounts(waiting=0, active=0)


async def test_a_taken_job_is_not_handed_out_again(queue: QueuePort) -> None:
    await queue.enqueue(run_id())
    assert await queue.take_next() is not None
    assert await queue.take_next() is None
    assert await queue.counts() == QueueCounts(waiting=0, active=1)


async def test_concurrent_takes_share_out_each_job_once(queue: QueuePort) -> None:
    runs = [run_id() for _ in range(10)]
    for run in runs:
        await queue.enqueue(run)
    taken = await asyncio.gather(*(queue.take_next() for _ in range(12)))
    assert sorted(job.run_id for job in taken if job) == sorted(runs)
    assert taken.count(None) == 2


async def test_enqueueing_a_finished_run_again_does_nothing(queue: QueuePort) -> None:
    run = run_id()
    await queue.enqueue(run)
    job = await queue.take_next()
    assert job is not None
    await queue.complete(job)
    await queue.enqueue(run)
    assert await queue.counts() == QueueCounts(waiting=0, active=0)
    assert await queue.take_next() is None


async def test_completing_a_job_that_is_not_active_is_refused(queue: QueuePort) -> None:
    run = run_id()
    await queue.enqueue(run)
    job = await queue.take_next()
    assert job is not None
    await queue.complete(job)
    with pytest.raises(InvalidArgument, match="not active"):
        await queue.complete(job)
    with pytest.raises(InvalidArgument, match="not active"):
        await queue.fail(Job(run_id=run_id()), "never taken")


async def test_a_job_is_live_while_waiting_taken_or_waiting_for_its_retry(
    queue: QueuePort,
) -> None:
    run, other = run_id(), run_id()
    assert await queue.has_live_job(run) is False  # never enqueued
    await queue.enqueue(run)
    await queue.enqueue(other)
    assert await queue.has_live_job(run) is True
    first = await queue.take_next()
    assert first is not None
    assert first.run_id == run
    assert await queue.has_live_job(run) is True
    await queue.fail(first, "InfraUnavailable: store down")
    assert await queue.has_live_job(run) is True
    assert await queue.has_live_job(other) is True
    for _ in range(2):
        job = await take_within_deadline(queue)
        await queue.complete(job)
    assert await queue.has_live_job(run) is False
    assert await queue.has_live_job(other) is False


async def test_a_job_that_failed_every_attempt_is_no_longer_live(queue: QueuePort) -> None:
    run = run_id()
    await queue.enqueue(run)
    for attempt in range(1, MAX_JOB_ATTEMPTS + 1):
        job = await take_within_deadline(queue)
        assert (job.run_id, job.attempt) == (run, attempt)
        await queue.fail(job, "InfraUnavailable: store down")
    assert await queue.has_live_job(run) is False
    assert await queue.counts() == QueueCounts(waiting=0, active=0)
    assert await queue.take_next() is None


async def test_closing_twice_is_harmless(queue: QueuePort) -> None:
    await queue.aclose()
    await queue.aclose()


async def test_wait_for_job_is_true_where_one_waits_and_false_after_timeout(
    queue: QueuePort,
) -> None:
    assert await queue.wait_for_job(0.05) is False
    await queue.enqueue(run_id())
    assert await queue.wait_for_job(0) is True
    job = await take_within_deadline(queue)
    await queue.complete(job)


async def test_a_waiting_worker_wakes_for_an_enqueue(queue: QueuePort) -> None:
    waiting = asyncio.create_task(queue.wait_for_job(30))
    await asyncio.sleep(0.05)
    await queue.enqueue(run_id())
    assert await asyncio.wait_for(waiting, 5) is True
    await queue.complete(await take_within_deadline(queue))
