"""BullMQQueue on the real server: a worker that vanishes mid-run, and one that stays alive."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import pytest
from bullmq import Queue
from redis.asyncio import Redis

from agents_run import (
    Infra,
    InMemoryEventBus,
    InMemoryRunStore,
    ManualClock,
    run_worker_once,
    start_run,
)
from agents_run.adapters.bullmq_queue import BullMQQueue, queue_name
from agents_run.application.infra import use_infra
from agents_run.ports import QueueCounts
from tests.services import delete_redis_keys, kill_redis_connections, redis_url, unique_prefix
from tests.tcp_proxy import proxied

pytestmark = pytest.mark.deterministic

# Short on purpose: a vanished worker's lock expires quickly, so recovery happens within a test.
LOCK_MS = 300
STALLED_INTERVAL_MS = 50
RECOVERY_DEADLINE = 10.0
RETRY_DELAY_MS = 50

QueueFactory = Callable[..., BullMQQueue]


@pytest.fixture
async def new_queue() -> AsyncIterator[QueueFactory]:
    """Makes adapters on one fresh queue, as separate worker processes would have."""
    default_url = redis_url()
    prefix = unique_prefix("queue")
    made: list[BullMQQueue] = []

    def make(lock_ms: int = LOCK_MS, url: str = default_url) -> BullMQQueue:
        made.append(
            BullMQQueue(
                url,
                key_prefix=prefix,
                connect_timeout=2.0,
                lock_duration_ms=lock_ms,
                stalled_interval_ms=STALLED_INTERVAL_MS,
                retry_delay_ms=RETRY_DELAY_MS,
            )
        )
        return made[-1]

    yield make
    for queue in made:
        await queue.aclose()
    await delete_redis_keys(default_url, prefix)


async def recover_within_deadline(queue: BullMQQueue) -> list[str]:
    """Call recover_stalled as a worker process does, until it moves something (or the deadline)."""
    async with asyncio.timeout(RECOVERY_DEADLINE):
        while True:
            if recovered := await queue.recover_stalled():
                return recovered
            await asyncio.sleep(STALLED_INTERVAL_MS / 1000)


def test_the_queue_and_its_keys_live_under_the_key_prefix() -> None:
    assert queue_name("agents-run") == "agents-run-runs"


async def test_a_job_whose_worker_vanished_is_taken_again_with_the_next_attempt(
    new_queue: QueueFactory,
) -> None:
    lost_worker, survivor = new_queue(), new_queue()
    await lost_worker.enqueue("run-1")
    first = await lost_worker.take_next()
    assert first is not None
    assert first.attempt == 1
    await lost_worker.aclose()  # its lock is no longer renewed, as when the process dies

    assert await recover_within_deadline(survivor) == ["run-1"]
    assert await survivor.counts() == QueueCounts(waiting=1, active=0)
    again = await survivor.take_next()
    assert again is not None
    assert (again.run_id, again.attempt) == ("run-1", 2)
    await survivor.complete(again)
    assert await survivor.counts() == QueueCounts(waiting=0, active=0)


async def test_a_job_whose_worker_lives_keeps_its_lock_past_the_lock_duration(
    new_queue: QueueFactory,
) -> None:
    # A longer lock than elsewhere, so that a busy machine delaying a renewal cannot fail this.
    lock_ms = 1000
    worker, checker = new_queue(lock_ms), new_queue(lock_ms)
    await worker.enqueue("run-1")
    job = await worker.take_next()
    assert job is not None
    # Stalled checks through two lock durations: lock renewal keeps the job the worker's.
    for _ in range(2 * lock_ms // STALLED_INTERVAL_MS):
        assert await checker.recover_stalled() == []
        await asyncio.sleep(STALLED_INTERVAL_MS / 1000)
    await worker.complete(job)
    assert await worker.counts() == QueueCounts(waiting=0, active=0)


async def test_a_run_whose_worker_vanished_mid_run_resumes_without_a_repeated_seq(
    new_queue: QueueFactory,
) -> None:
    lost_worker, survivor = new_queue(), new_queue()
    store = InMemoryRunStore()
    clock = ManualClock()
    with use_infra(Infra(bus=InMemoryEventBus(), queue=lost_worker, store=store, clock=clock)):
        run_id = await start_run("echo", {"text": "a b c"})
        job = await lost_worker.take_next()
        assert job is not None
        # The lost worker took the run's lease, recorded two events, then its process died.
        await store.acquire_lease(run_id, at=clock.now(), until=clock.now() + timedelta(seconds=5))
        await store.append_event(run_id, "RunStarted", {"agent": "echo"}, at=clock.now())
        await store.append_event(run_id, "RunStep", {"text": "a"}, at=clock.now())
        await lost_worker.aclose()

    assert await recover_within_deadline(survivor) == [run_id]
    clock.advance(5)  # its lease lapsed too
    with use_infra(Infra(bus=InMemoryEventBus(), queue=survivor, store=store, clock=clock)):
        assert await run_worker_once() is True
        assert await run_worker_once() is False
    events = await store.read_events(run_id)
    assert [(e.seq, e.type) for e in events] == [
        (1, "RunStarted"),
        (2, "RunStep"),
        (3, "RunResumed"),
        (4, "RunStep"),
        (5, "RunStep"),
        (6, "RunFinished"),
    ]
    assert events[2].data == {"attempt": 2, "resumed_after_seq": 2}
    assert [e.data["text"] for e in events if e.type == "RunStep"] == ["a", "b", "c"]
    assert await survivor.counts() == QueueCounts(waiting=0, active=0)


async def test_completing_a_job_that_another_worker_took_over_leaves_it_to_that_worker(
    new_queue: QueueFactory, caplog: pytest.LogCaptureFixture
) -> None:
    checker = new_queue()
    async with proxied(redis_url()) as (proxy, proxied_url):
        cut_off = new_queue(url=proxied_url)
        await cut_off.enqueue("run-1")
        job = await cut_off.take_next()
        assert job is not None
        await proxy.stop()  # its lock renewals no longer reach Redis
        assert await recover_within_deadline(checker) == ["run-1"]
        await proxy.start()

        await cut_off.complete(job)  # no longer its job: logged, not raised
    assert "no longer held by this worker" in caplog.text
    taken_over = await checker.take_next()
    assert taken_over is not None
    assert taken_over.attempt == 2


async def test_completing_a_job_that_redis_lost_logs_one_line_not_a_traceback(
    new_queue: QueueFactory, caplog: pytest.LogCaptureFixture
) -> None:
    queue = new_queue()
    await queue.enqueue("run-1")
    job = await queue.take_next()
    assert job is not None
    client = Redis.from_url(redis_url())
    try:  # what a Redis restart without persistence does to the job's hash
        assert await client.delete(f"{queue.key_prefix}:{queue.name}:run-1") == 1
    finally:
        await client.aclose()
    await queue.complete(job)  # logged, not raised
    lost = [r for r in caplog.records if "no longer held by this worker" in r.getMessage()]
    assert [(r.levelname, r.exc_info) for r in lost] == [("WARNING", None)]
    assert "Missing key for job" in lost[0].getMessage()


async def test_a_job_completed_after_its_connections_were_cut_is_completed(
    new_queue: QueueFactory,
) -> None:
    queue = new_queue()
    await queue.enqueue("run-1")
    job = await queue.take_next()
    assert job is not None
    name = f"{queue.key_prefix}:queue"
    assert await kill_redis_connections(redis_url(), name, pubsub=False) >= 1  # a restart's cut
    await queue.complete(job)  # the dropped pooled connection fails once; the retry completes it
    assert await queue.counts() == QueueCounts(waiting=0, active=0)
    assert not await queue.has_live_job("run-1")


async def test_enqueueing_after_the_connections_were_cut_adds_the_job(
    new_queue: QueueFactory,
) -> None:
    queue = new_queue()
    assert await queue.counts() == QueueCounts(waiting=0, active=0)  # a pooled connection
    assert await kill_redis_connections(redis_url(), f"{queue.key_prefix}:queue", pubsub=False)
    await queue.enqueue("run-1")  # what start_run does: no error for a dropped connection
    assert await queue.counts() == QueueCounts(waiting=1, active=0)


async def test_a_failed_job_shows_its_error_to_bullmq_tools(new_queue: QueueFactory) -> None:
    queue = new_queue()
    await queue.enqueue("run-1")
    job = await queue.take_next()
    assert job is not None
    await queue.fail(job, "RuntimeError: store down")

    inspector = Queue(queue.name, {"connection": redis_url(), "prefix": queue.key_prefix})
    try:
        failed = await inspector.getJob("run-1")
        assert await inspector.getJobState("run-1") == "delayed"  # to be retried
    finally:
        await inspector.close()
    assert (failed.failedReason, failed.stacktrace) == ("RuntimeError: store down", [])


async def test_a_failed_job_is_retried_and_the_retry_resumes_its_running_run(
    new_queue: QueueFactory,
) -> None:
    infra = Infra(bus=InMemoryEventBus(), queue=new_queue(), store=InMemoryRunStore())
    with use_infra(infra):
        run_id = await start_run("echo", {"text": "a"})
        job = await infra.queue.take_next()
        assert job is not None
        # The store answered RunStarted, then went away: the worker could only fail the job.
        await infra.store.append_event(run_id, "RunStarted", {}, at=infra.clock.now())
        await infra.queue.fail(job, "InfraUnavailable: PostgreSQL did not answer")

        async with asyncio.timeout(RECOVERY_DEADLINE):
            while not await run_worker_once():  # noqa: ASYNC110 - the retry is on a timer
                await asyncio.sleep(RETRY_DELAY_MS / 1000)
    events = await infra.store.read_events(run_id)
    assert [e.type for e in events] == ["RunStarted", "RunResumed", "RunStep", "RunFinished"]
    assert await infra.queue.counts() == QueueCounts(waiting=0, active=0)


async def add_foreign_job(queue: BullMQQueue, data: dict[str, object]) -> str:
    """A job as another producer adds it: no job id, no options (its id is BullMQ's counter)."""
    producer = Queue(queue.name, {"connection": redis_url(), "prefix": queue.key_prefix})
    try:
        job = await producer.add("run", data, {})
    finally:
        await producer.close()
    return str(job.id)


async def test_a_job_without_the_run_id_as_its_id_is_taken_for_the_run_its_data_names(
    new_queue: QueueFactory,
) -> None:
    queue = new_queue()
    job_id = await add_foreign_job(queue, {"run_id": "run-7"})
    assert job_id != "run-7"
    job = await queue.take_next()
    assert job is not None
    assert (job.run_id, job.attempt) == ("run-7", 1)
    await queue.complete(job)
    assert await queue.counts() == QueueCounts(waiting=0, active=0)


async def test_a_job_added_without_retry_options_is_retried_as_the_projects_own(
    new_queue: QueueFactory,
) -> None:
    queue = new_queue()
    await add_foreign_job(queue, {"run_id": "run-7"})
    for attempt in (1, 2):
        async with asyncio.timeout(RECOVERY_DEADLINE):
            while (job := await queue.take_next()) is None:  # noqa: ASYNC110 - a retry timer
                await asyncio.sleep(RETRY_DELAY_MS / 1000)
        assert (job.run_id, job.attempt) == ("run-7", attempt)
        await queue.fail(job, "RuntimeError: store down")
        assert await queue.counts() == QueueCounts(waiting=1, active=0)  # waiting for a retry
