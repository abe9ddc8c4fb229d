"""The sweeper ends the runs that no worker will ever take again, and leaves every other alone."""

from __future__ import annotations

import asyncio
import logging
import math
from datetime import timedelta

import pytest

from agents_run import (
    Infra,
    InfraUnavailable,
    InvalidArgument,
    ManualClock,
    RunStatus,
    cancel_run,
    run_until_idle,
    run_worker_once,
    start_run,
    sweep_orphaned_runs,
)
from agents_run.application.processes import serve_worker
from agents_run.application.take_over_runs import take_over_lapsed_runs
from agents_run.domain.events import Run
from agents_run.ports import MAX_JOB_ATTEMPTS

ORPHAN_AFTER = 600.0  # the default
REQUEUE_AFTER = 30.0  # the default
DEADLINE = 5.0

WORKER_LOST = {
    "error_type": "WorkerLost",
    "message": "no worker holds this run any more (its job failed all its attempts or was "
    "lost); start a new run to retry",
}
ORPHANED = {
    "error_type": "Orphaned",
    "message": "no worker will take this run (its job was never added, failed all its "
    "attempts, or was lost); start it again",
}


def advance(infra: Infra, seconds: float) -> None:
    assert isinstance(infra.clock, ManualClock), "these tests move the infra's clock"
    infra.clock.advance(seconds)


async def history(infra: Infra, run_id: str) -> list[tuple[str, object]]:
    return [(event.type, event.data) for event in await infra.store.read_events(run_id)]


async def run_without_a_job(infra: Infra, run_id: str, *, started: bool) -> str:
    """A run as a queue that lost its job leaves it: saved (and started), with no job at all."""
    now = infra.clock.now()
    run = Run(
        id=run_id,
        agent="echo",
        input={"text": "a"},
        status=RunStatus.QUEUED,
        created_at=now,
        updated_at=now,
    )
    await infra.store.create_run(run)
    if started:
        await infra.store.append_event(run_id, "RunStarted", {"agent": "echo"}, at=now)
    return run_id


async def queued_run_whose_job_failed_every_attempt(infra: Infra) -> str:
    """A queued run whose job the queue gave up on: enqueueing it again does nothing."""
    run_id = await run_without_a_job(infra, "run-given-up", started=False)
    await infra.queue.enqueue(run_id)
    for _ in range(MAX_JOB_ATTEMPTS):
        job = await infra.queue.take_next()
        assert job is not None
        await infra.queue.fail(job, "InfraUnavailable: PostgreSQL did not answer")
    assert await infra.queue.has_live_job(run_id) is False
    return run_id


async def start_run_losing_its_job(infra: Infra, monkeypatch: pytest.MonkeyPatch) -> str:
    """``start_run`` while Redis and then the store fail, right after the run was saved."""

    async def redis_down(run_id: str) -> None:
        raise InfraUnavailable("Redis did not answer")

    async def store_down(*args: object, **kwargs: object) -> None:
        raise InfraUnavailable("PostgreSQL did not answer")

    with monkeypatch.context() as outage:
        outage.setattr(infra.queue, "enqueue", redis_down)
        outage.setattr(infra.store, "append_event", store_down)
        with pytest.raises(InfraUnavailable, match="Redis"):
            await start_run("echo", {"text": "a"})
    # start_run raised, so the run id is found where an operator would find it.
    (run,) = await infra.store.list_stale_runs(updated_before=infra.clock.now() + timedelta(1))
    assert run.status is RunStatus.QUEUED
    assert await infra.queue.has_live_job(run.id) is False
    return run.id


# --- the two holes ---------------------------------------------------------------------------


@pytest.mark.deterministic
@pytest.mark.agents_run_memory_only(reason="a networked queue spaces the attempts over ~17 min")
async def test_a_running_run_whose_job_failed_every_attempt_ends_worker_lost(
    infra: Infra, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = await start_run("echo", {"text": "a b"})
    calls = {"get_run": 0, "append_event": 0}

    def store_down_after_one(name: str) -> object:
        real = getattr(infra.store, name)

        async def call(*args: object, **kwargs: object) -> object:
            calls[name] += 1
            if calls[name] > 1:
                raise InfraUnavailable("PostgreSQL did not answer")
            return await real(*args, **kwargs)

        return call

    with monkeypatch.context() as outage:  # the store dies right after RunStarted, for good
        for name in calls:
            outage.setattr(infra.store, name, store_down_after_one(name))
        for _ in range(MAX_JOB_ATTEMPTS):
            with pytest.raises(InfraUnavailable):
                await run_worker_once(store_outage_bound=0)
    assert await run_worker_once() is False  # no attempt is left
    assert (await infra.store.get_run(run_id)).status is RunStatus.RUNNING
    assert await infra.queue.has_live_job(run_id) is False

    # Each failing worker released its lease on the way out: the run is taken over at once,
    # not left to the sweeper.
    advance(infra, ORPHAN_AFTER + 1)
    assert await sweep_orphaned_runs() == []
    assert await take_over_lapsed_runs() == [run_id]
    assert await history(infra, run_id) == [
        ("RunStarted", {"agent": "echo"}),
        (
            "RunFailed",
            {
                "error_type": "WorkerLost",
                # Only the first take got as far as the lease: the store failed before it since.
                "message": "the worker running attempt 1 stopped before the run ended; start a "
                "new run to retry",
            },
        ),
    ]
    await run_until_idle()


@pytest.mark.deterministic
async def test_a_running_run_whose_job_is_gone_ends_worker_lost(
    infra: Infra, caplog: pytest.LogCaptureFixture
) -> None:
    run_id = await run_without_a_job(infra, "run-lost", started=True)
    advance(infra, ORPHAN_AFTER + 1)
    with caplog.at_level(logging.WARNING, logger="agents_run.sweeper"):
        assert await sweep_orphaned_runs() == [run_id]
    assert await history(infra, run_id) == [
        ("RunStarted", {"agent": "echo"}),
        ("RunFailed", WORKER_LOST),
    ]
    assert (await infra.store.get_run(run_id)).status is RunStatus.FAILED
    assert "run run-lost ended RunFailed (WorkerLost): it was running" in caplog.text
    await run_until_idle()


@pytest.mark.deterministic
async def test_a_queued_run_whose_job_was_never_added_is_enqueued_again_and_runs(
    infra: Infra, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    run_id = await start_run_losing_its_job(infra, monkeypatch)
    advance(infra, REQUEUE_AFTER - 1)
    assert await sweep_orphaned_runs() == []
    assert await infra.queue.has_live_job(run_id) is False, "not before requeue_after"
    advance(infra, 2)
    with caplog.at_level(logging.WARNING, logger="agents_run.sweeper"):
        assert await sweep_orphaned_runs() == []
    assert f"run {run_id} is queued in the store but its job was missing" in caplog.text
    assert await infra.queue.has_live_job(run_id) is True
    await run_until_idle()
    assert [event.type for event in await infra.store.read_events(run_id)][-1] == "RunFinished"


@pytest.mark.deterministic
@pytest.mark.agents_run_memory_only(reason="a networked queue spaces the attempts over ~17 min")
async def test_a_queued_run_whose_job_failed_every_attempt_ends_orphaned(infra: Infra) -> None:
    run_id = await queued_run_whose_job_failed_every_attempt(infra)
    advance(infra, ORPHAN_AFTER - 1)
    assert await sweep_orphaned_runs() == []
    advance(infra, 2)
    assert await sweep_orphaned_runs() == [run_id]
    assert await history(infra, run_id) == [("RunFailed", ORPHANED)]
    assert await run_worker_once() is False
    await run_until_idle()


# --- what the sweeper leaves alone -----------------------------------------------------------


@pytest.mark.deterministic
async def test_a_run_whose_worker_holds_its_job_is_left_alone(infra: Infra) -> None:
    run_id = await start_run("echo", {"text": "a"})
    job = await infra.queue.take_next()  # a worker in a long model call, recording nothing
    assert job is not None
    await infra.store.append_event(run_id, "RunStarted", {"agent": "echo"}, at=infra.clock.now())
    advance(infra, 10 * ORPHAN_AFTER)
    assert await sweep_orphaned_runs() == []
    assert (await infra.store.get_run(run_id)).status is RunStatus.RUNNING
    await infra.store.append_event(run_id, "RunFinished", {}, at=infra.clock.now())
    await infra.queue.complete(job)
    await run_until_idle()


@pytest.mark.deterministic
async def test_a_queued_run_waiting_for_a_worker_is_left_alone(infra: Infra) -> None:
    run_id = await start_run("echo", {"text": "a"})
    advance(infra, 10 * ORPHAN_AFTER)  # every worker is busy
    assert await sweep_orphaned_runs() == []
    await run_until_idle()
    assert [event.type for event in await infra.store.read_events(run_id)][-1] == "RunFinished"


@pytest.mark.deterministic
async def test_a_run_updated_recently_is_left_alone_until_quiet_for_long_enough(
    infra: Infra,
) -> None:
    run_id = await run_without_a_job(infra, "run-slow", started=True)
    advance(infra, ORPHAN_AFTER - 100)
    await infra.store.append_event(run_id, "RunStep", {"text": "a"}, at=infra.clock.now())
    advance(infra, ORPHAN_AFTER - 100)
    assert await sweep_orphaned_runs() == []
    advance(infra, 101)
    assert await sweep_orphaned_runs() == [run_id]
    await run_until_idle()


# --- cancellations and races -----------------------------------------------------------------


@pytest.mark.deterministic
async def test_a_running_orphan_whose_cancellation_was_requested_ends_cancelled(
    infra: Infra,
) -> None:
    run_id = await run_without_a_job(infra, "run-lost", started=True)
    assert await cancel_run(run_id) is True  # only a flag: no worker will read it
    advance(infra, ORPHAN_AFTER + 1)
    assert await sweep_orphaned_runs() == [run_id]
    assert await history(infra, run_id) == [
        ("RunStarted", {"agent": "echo"}),
        ("RunCancelled", {}),
    ]
    await run_until_idle()


@pytest.mark.deterministic
async def test_a_queued_run_whose_cancellation_was_only_flagged_ends_cancelled(
    infra: Infra, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = await start_run_losing_its_job(infra, monkeypatch)
    # cancel_run's first half; its second half (recording RunCancelled) failed.
    assert await infra.store.request_cancel(run_id, at=infra.clock.now()) is True
    advance(infra, REQUEUE_AFTER + 1)
    assert await sweep_orphaned_runs() == []  # enqueued again: the worker ends it
    await run_until_idle()
    assert await history(infra, run_id) == [("RunCancelled", {})]


@pytest.mark.deterministic
@pytest.mark.agents_run_memory_only(reason="a networked queue spaces the attempts over ~17 min")
async def test_a_queued_orphan_whose_cancellation_was_only_flagged_ends_cancelled(
    infra: Infra,
) -> None:
    run_id = await queued_run_whose_job_failed_every_attempt(infra)
    assert await infra.store.request_cancel(run_id, at=infra.clock.now()) is True
    advance(infra, ORPHAN_AFTER + 1)
    assert await sweep_orphaned_runs() == [run_id]
    assert await history(infra, run_id) == [("RunCancelled", {})]
    await run_until_idle()


@pytest.mark.deterministic
@pytest.mark.agents_run_memory_only(reason="a networked queue spaces the attempts over ~17 min")
async def test_a_canceller_that_gets_there_first_wins(
    infra: Infra, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = await queued_run_whose_job_failed_every_attempt(infra)
    advance(infra, ORPHAN_AFTER + 1)
    real_has_live_job = infra.queue.has_live_job

    async def cancelled_meanwhile(wanted: str) -> bool:
        assert await cancel_run(wanted) is True  # between the sweeper's read and its write
        monkeypatch.setattr(infra.queue, "has_live_job", real_has_live_job)
        return await real_has_live_job(wanted)

    monkeypatch.setattr(infra.queue, "has_live_job", cancelled_meanwhile)
    assert await sweep_orphaned_runs() == []
    assert await history(infra, run_id) == [("RunCancelled", {})]
    await run_until_idle()


@pytest.mark.deterministic
async def test_a_worker_that_ends_the_run_first_wins(
    infra: Infra, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = await run_without_a_job(infra, "run-slow", started=True)
    advance(infra, ORPHAN_AFTER + 1)
    real_has_live_job = infra.queue.has_live_job

    async def finished_meanwhile(wanted: str) -> bool:
        await infra.store.append_event(wanted, "RunFinished", {}, at=infra.clock.now())
        return await real_has_live_job(wanted)

    monkeypatch.setattr(infra.queue, "has_live_job", finished_meanwhile)
    assert await sweep_orphaned_runs() == []
    assert await history(infra, run_id) == [
        ("RunStarted", {"agent": "echo"}),
        ("RunFinished", {}),
    ]
    await run_until_idle()


@pytest.mark.deterministic
async def test_a_run_that_a_worker_starts_meanwhile_is_left_to_the_worker(
    infra: Infra, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = await run_without_a_job(infra, "run-late", started=True)  # its job comes late
    advance(infra, ORPHAN_AFTER + 1)
    real_has_live_job = infra.queue.has_live_job

    async def started_meanwhile(wanted: str) -> bool:
        live = await real_has_live_job(wanted)
        await infra.store.append_event(wanted, "RunStep", {"text": "a"}, at=infra.clock.now())
        return live

    monkeypatch.setattr(infra.queue, "has_live_job", started_meanwhile)
    assert await sweep_orphaned_runs() == []
    assert (await infra.store.get_run(run_id)).status is RunStatus.RUNNING
    await infra.store.append_event(run_id, "RunFinished", {}, at=infra.clock.now())
    await run_until_idle()


# Not deterministic: on real services the two sweepers' effects interleave as I/O allows.
async def test_two_sweepers_at_once_end_each_run_once(infra: Infra) -> None:
    run_ids = [await run_without_a_job(infra, f"run-{n}", started=True) for n in range(3)]
    advance(infra, ORPHAN_AFTER + 1)
    first, second = await asyncio.gather(sweep_orphaned_runs(), sweep_orphaned_runs())
    assert sorted(first + second) == run_ids
    for run_id in run_ids:
        assert [event.type for event in await infra.store.read_events(run_id)] == [
            "RunStarted",
            "RunFailed",
        ]
    await run_until_idle()


@pytest.mark.deterministic
async def test_a_sweep_ends_at_most_limit_runs_oldest_first(infra: Infra) -> None:
    oldest = await run_without_a_job(infra, "run-b", started=True)
    advance(infra, 1)
    middle = await run_without_a_job(infra, "run-a", started=True)
    advance(infra, 1)
    newest = await run_without_a_job(infra, "run-c", started=True)
    advance(infra, ORPHAN_AFTER + 1)
    assert await sweep_orphaned_runs(limit=2) == [oldest, middle]
    assert await sweep_orphaned_runs(limit=2) == [newest]
    await run_until_idle()


@pytest.mark.deterministic
@pytest.mark.parametrize(
    "arguments",
    [
        {"older_than": -1},
        {"older_than": math.nan},
        {"older_than": math.inf},
        {"older_than": True},
        {"older_than": "600"},
        {"limit": 0},
        {"limit": 2.5},
        {"limit": True},
    ],
)
async def test_bad_arguments_are_refused(infra: Infra, arguments: dict[str, object]) -> None:
    with pytest.raises(InvalidArgument, match=next(iter(arguments))):
        await sweep_orphaned_runs(**arguments)  # type: ignore[arg-type]


# --- in the worker process -------------------------------------------------------------------


@pytest.mark.deterministic
async def test_the_worker_sweeps_periodically_and_outlives_a_failing_sweep(
    infra: Infra, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    run_id = await run_without_a_job(infra, "run-lost", started=True)
    advance(infra, 301)
    real_list_stale_runs = infra.store.list_stale_runs
    sweeps = 0

    async def failing_once(**kwargs: object) -> list[Run]:
        nonlocal sweeps
        sweeps += 1
        if sweeps == 1:
            raise ConnectionError("PostgreSQL restarting")
        return await real_list_stale_runs(**kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(infra.store, "list_stale_runs", failing_once)
    draining = asyncio.Event()
    with caplog.at_level(logging.WARNING, logger="agents_run.worker"):
        worker = asyncio.create_task(
            serve_worker(
                draining=draining,
                stop=asyncio.Event(),
                idle_poll=0.01,
                orphan_after=300,
                sweep_interval=0.01,
            )
        )
        async with asyncio.timeout(DEADLINE):
            while (await infra.store.get_run(run_id)).status is RunStatus.RUNNING:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        draining.set()
        assert await asyncio.wait_for(worker, DEADLINE) == 0
    assert sweeps >= 2
    assert "sweeping orphaned runs failed; trying again later" in caplog.text
    assert await history(infra, run_id) == [
        ("RunStarted", {"agent": "echo"}),
        ("RunFailed", WORKER_LOST),
    ]
    await run_until_idle()


@pytest.mark.deterministic
@pytest.mark.parametrize("orphan_after", [-1.0, math.nan])
async def test_the_worker_refuses_a_bad_orphan_age(infra: Infra, orphan_after: float) -> None:
    with pytest.raises(InvalidArgument, match="orphan_after must be seconds >= 0"):
        await serve_worker(
            draining=asyncio.Event(), stop=asyncio.Event(), orphan_after=orphan_after
        )
