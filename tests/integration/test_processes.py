from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence

import pytest

from agents_run import (
    Infra,
    InvalidArgument,
    ManualClock,
    RunEvent,
    register_agent,
    run_worker_once,
    start_run,
    stream_run,
)
from agents_run.application.processes import serve_publisher, serve_worker
from agents_run.domain.json_data import JsonObject
from agents_run.ports import Job
from tests.leaks import leaves_work_on_purpose

# Not module-wide: where two loops run at once on real services (services mode), the order of
# their effects follows I/O timing, so those two tests make no claim of determinism.
deterministic = pytest.mark.deterministic


@leaves_work_on_purpose  # the worker only appends; publishing is not its job
async def test_worker_loops_run_every_job_then_drain_on_request(infra: Infra) -> None:
    run_ids = [await start_run("echo", {"text": "a b"}) for _ in range(5)]
    draining, stop = asyncio.Event(), asyncio.Event()
    worker = asyncio.create_task(
        serve_worker(draining=draining, stop=stop, concurrency=2, idle_poll=0.01)
    )

    async def queue_empty() -> None:
        while (await infra.queue.counts()).total:  # noqa: ASYNC110 - the queue has no event
            await asyncio.sleep(0.01)

    await asyncio.wait_for(queue_empty(), 5)
    draining.set()
    assert await asyncio.wait_for(worker, 5) == 5
    for run_id in run_ids:
        assert (await infra.store.get_run(run_id)).status == "finished"


@deterministic
@leaves_work_on_purpose  # a queued run stays queued: that is what draining means
async def test_draining_lets_a_run_in_progress_finish(infra: Infra) -> None:
    draining, stop = asyncio.Event(), asyncio.Event()

    @register_agent("drained-mid-run")
    async def agent(input: JsonObject) -> AsyncIterator[JsonObject]:
        yield {"step": 1}
        draining.set()  # SIGTERM with a grace period: no new jobs, this run goes on
        yield {"step": 2}

    run_id = await start_run("drained-mid-run", {})
    queued = await start_run("echo", {"text": "never taken"})
    jobs = await asyncio.wait_for(serve_worker(draining=draining, stop=stop), 5)
    assert jobs == 1
    assert [e.type for e in await infra.store.read_events(run_id)][-1] == "RunFinished"
    assert (await infra.store.get_run(queued)).status == "queued"


@deterministic
@leaves_work_on_purpose  # the worker only appends; publishing is not its job
async def test_an_infrastructure_error_is_logged_and_retried(
    infra: Infra, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    draining, stop = asyncio.Event(), asyncio.Event()
    calls = 0
    real_take = infra.queue.take_next

    async def flaky_take():  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("redis restarting")
        if calls >= 3:
            draining.set()
        return await real_take()

    monkeypatch.setattr(infra.queue, "take_next", flaky_take)
    run_id = await start_run("echo", {"text": "a"})
    with caplog.at_level(logging.WARNING, logger="agents_run.worker"):
        jobs = await asyncio.wait_for(serve_worker(draining=draining, stop=stop, idle_poll=0.01), 5)
    assert jobs == 1
    # One line, with the cause, at WARNING; the traceback only at DEBUG.
    [line] = [r for r in caplog.records if "retrying" in r.getMessage()]
    assert line.levelno == logging.WARNING
    assert line.getMessage() == (
        "worker loop 0: job failed; retrying in 0.0s (ConnectionError: redis restarting)"
    )
    assert line.exc_info is None
    assert (await infra.store.get_run(run_id)).status == "finished"


@leaves_work_on_purpose  # the worker only appends
async def test_after_a_worker_loop_failed_a_queued_run_whose_job_was_lost_runs_at_once(
    infra: Infra, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What a Redis restart without persistence leaves: the run queued in the store, no job.
    with monkeypatch.context() as lost:
        lost.setattr(infra.queue, "enqueue", _enqueue_nothing)
        run_id = await start_run("echo", {"text": "a"})
    assert isinstance(infra.clock, ManualClock)
    infra.clock.advance(1)  # a moment later, not the 30 s a periodic sweep waits for
    draining, stop = asyncio.Event(), asyncio.Event()
    real_take, calls = infra.queue.take_next, 0

    async def take_failing_once() -> Job | None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("Connection closed by server.")
        return await real_take()

    monkeypatch.setattr(infra.queue, "take_next", take_failing_once)
    worker = asyncio.create_task(
        serve_worker(draining=draining, stop=stop, idle_poll=0.01, sweep_interval=3600)
    )

    async def finished() -> None:
        while (await infra.store.get_run(run_id)).status != "finished":  # noqa: ASYNC110
            await asyncio.sleep(0.01)

    try:
        await asyncio.wait_for(finished(), 10)
    finally:
        draining.set()
        await asyncio.wait_for(worker, 10)


async def _enqueue_nothing(run_id: str) -> None:
    pass


@deterministic
@pytest.mark.parametrize("concurrency", [0, -1, 1.5, True])
async def test_concurrency_must_be_a_positive_int(infra: Infra, concurrency: object) -> None:
    with pytest.raises(InvalidArgument, match="concurrency"):
        await serve_worker(
            draining=asyncio.Event(),
            stop=asyncio.Event(),
            concurrency=concurrency,  # type: ignore[arg-type]
        )


@deterministic
async def test_the_worker_asks_the_queue_for_stalled_jobs(
    infra: Infra, monkeypatch: pytest.MonkeyPatch
) -> None:
    draining, stop = asyncio.Event(), asyncio.Event()
    checks = 0

    async def counting_recover() -> list[str]:
        nonlocal checks
        checks += 1
        if checks == 2:
            draining.set()
        return []

    monkeypatch.setattr(infra.queue, "recover_stalled", counting_recover)
    await asyncio.wait_for(
        serve_worker(draining=draining, stop=stop, idle_poll=0.01, stalled_check_interval=0.01),
        5,
    )
    assert checks == 2


async def test_the_publisher_publishes_as_rows_arrive_until_stopped(infra: Infra) -> None:
    stop = asyncio.Event()
    publisher = asyncio.create_task(serve_publisher(stop=stop, idle_wait=3))
    run_id = await start_run("echo", {"text": "a b"})

    async def seqs() -> list[int]:
        return [event.seq async for event in stream_run(run_id, poll_interval=30)]

    stream = asyncio.create_task(seqs())  # poll_interval=30: only the bus can feed it in time
    await asyncio.sleep(0)
    await run_worker_once()  # the appends wake the publisher from its 3 s wait
    assert await asyncio.wait_for(stream, 2) == [1, 2, 3, 4]
    stop.set()
    assert await asyncio.wait_for(publisher, 10) == 4


@deterministic
async def test_the_publisher_retries_after_an_error(
    infra: Infra, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    stop = asyncio.Event()
    run_id = await start_run("echo", {"text": "a"})
    await run_worker_once()
    real_publish_batch = infra.bus.publish_batch
    failures = 1

    async def flaky_publish_batch(events: Sequence[RunEvent]) -> None:
        nonlocal failures
        if failures:
            failures -= 1
            raise ConnectionError("redis restarting")
        await real_publish_batch(events)
        if any(event.is_terminal for event in events):
            stop.set()

    monkeypatch.setattr(infra.bus, "publish_batch", flaky_publish_batch)
    with caplog.at_level(logging.WARNING, logger="agents_run.worker"):
        published = await asyncio.wait_for(serve_publisher(stop=stop, idle_wait=0.01), 5)
    assert published == 3
    assert "publishing failed; retrying" in caplog.text
    assert await infra.store.pending_outbox(run_id) == []
