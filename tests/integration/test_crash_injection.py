"""``crash_at``: the worker dies at a boundary, as after ``kill -9``, and ``take_over()`` is the
next worker. (tests/integration/test_crash_matrix.py crashes every boundary of several agents.)"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from agents_run import (
    Infra,
    InMemoryEventBus,
    InvalidArgument,
    RunContext,
    RunStatus,
    register_agent,
    run_until_idle,
    running_worker,
    start_run,
    use_infra,
)
from agents_run.domain.json_data import JsonObject
from agents_run.ids_and_time import SystemClock
from agents_run.ports import EventBusPort, QueuePort, RunStorePort
from pytest_agents_run import (
    Crash,
    CrashInjectionError,
    CrashPointNotReached,
    WorkerCrashed,
    count_crash_points,
    crash_at,
)
from pytest_agents_run.crashes import BOUNDARIES
from pytest_agents_run.recording import port_methods

memory_only = pytest.mark.agents_run_memory_only(
    reason="take_over hands the crashed worker's job on through InMemoryQueue"
)


async def history(infra: Infra, run_id: str) -> list[tuple[str, JsonObject]]:
    return [(event.type, event.data) for event in await infra.store.read_events(run_id)]


@pytest.fixture
def fetches() -> list[str]:
    """The calls of the ``fetcher`` agent's one step; it yields the step's result."""
    calls: list[str] = []

    def fetch() -> str:
        calls.append("fetch")
        return "page"

    @register_agent("fetcher")
    async def agent(input: JsonObject, ctx: RunContext) -> AsyncIterator[JsonObject]:
        try:
            page = await ctx.step("fetch", fetch)
        except Exception:  # the agent's own error handling: it does not see the crash
            yield {"caught": True}
            return
        yield {"page": page}

    return calls


@pytest.mark.deterministic
@memory_only
async def test_a_crashed_worker_leaves_its_job_taken_its_lease_held_and_its_event_unpublished(
    infra: Infra, fetches: list[str]
) -> None:
    run_id = await start_run("fetcher", {})
    with crash_at(Crash.AFTER_APPEND, nth=2) as crash:  # RunStarted, then the RunStep
        await run_until_idle()
    assert crash.crashed is not None
    assert crash.crashed.nth == 2
    run = await infra.store.get_run(run_id)
    lease = timedelta(seconds=infra.lease_seconds)
    assert (run.status, run.last_seq, run.lease_until) == (
        RunStatus.RUNNING,
        2,
        infra.clock.now() + lease,  # not released: the worker died
    )
    assert (await infra.queue.counts()).active == 1, "nor failed its job"
    assert await infra.store.count_pending_outbox() == 2, "nor published"

    await crash.take_over()
    assert await history(infra, run_id) == [
        ("RunStarted", {"agent": "fetcher"}),
        ("RunStep", {"page": "page"}),
        ("RunResumed", {"attempt": 2, "resumed_after_seq": 2}),
        ("RunFinished", {}),
    ]
    assert fetches == ["fetch"]
    assert (await infra.queue.counts()).total == 0
    assert await infra.store.count_pending_outbox() == 0


@pytest.mark.deterministic
@memory_only
async def test_a_crash_after_a_step_ran_is_no_error_of_the_agent_and_the_step_runs_again(
    infra: Infra, fetches: list[str]
) -> None:
    run_id = await start_run("fetcher", {})
    with crash_at(Crash.AFTER_STEP_RAN) as crash:
        await run_until_idle()
    assert fetches == ["fetch"]
    assert await infra.store.read_steps(run_id) == [], "its result was not recorded"
    await crash.take_over()
    assert fetches == ["fetch", "fetch"], "the step in flight at the crash runs again"
    assert [data for _, data in await history(infra, run_id)][1:3] == [
        {"attempt": 2, "resumed_after_seq": 1},
        {"page": "page"},  # not {"caught": True}
    ]


@pytest.mark.deterministic
async def test_a_crash_mid_publish_leaves_the_published_chunk_unmarked(
    infra: Infra, fetches: list[str]
) -> None:
    run_id = await start_run("fetcher", {})
    with crash_at(Crash.MID_PUBLISH, nth=2) as crash:  # chunks of 1, then 2 rows
        await run_until_idle()
    pending = [row.event.seq for row in await infra.store.pending_outbox(run_id)]
    assert pending == [2, 3], "published by the dead publisher, never marked"
    if isinstance(infra.bus, InMemoryEventBus):
        assert [event.seq for event in infra.bus.published] == [1, 2, 3]
    await crash.take_over()
    assert await infra.store.count_pending_outbox() == 0
    assert [event_type for event_type, _ in await history(infra, run_id)] == [
        "RunStarted",
        "RunStep",
        "RunFinished",
    ]


@pytest.mark.deterministic
@memory_only
async def test_a_second_crash_during_the_take_over_is_taken_over_in_turn(
    infra: Infra, fetches: list[str]
) -> None:
    run_id = await start_run("fetcher", {})
    with crash_at(Crash.AFTER_STEP_RAN) as first:
        await run_until_idle()
    with crash_at(Crash.AFTER_STEP_RAN) as second:  # the worker that took over dies too
        await first.take_over()
    await second.take_over()
    resumed = [
        data for event_type, data in await history(infra, run_id) if event_type == "RunResumed"
    ]
    assert resumed == [
        {"attempt": 2, "resumed_after_seq": 1},
        {"attempt": 3, "resumed_after_seq": 2},
    ]
    assert fetches == ["fetch"] * 3
    assert (await history(infra, run_id))[-1] == ("RunFinished", {})


@pytest.mark.deterministic
@memory_only
async def test_a_worker_running_in_tasks_crashes_too(
    infra: Infra, fetches: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    run_id = await start_run("fetcher", {})
    with crash_at(Crash.AFTER_STEP_RAN) as crash:
        async with running_worker():
            await crash.wait()
    # The worker and the publisher both died; neither's error is left unretrieved.
    gc.collect()
    assert "never retrieved" not in caplog.text
    await crash.take_over()
    assert (await history(infra, run_id))[-1] == ("RunFinished", {})


@pytest.mark.deterministic
async def test_count_crash_points_counts_what_a_block_passes(
    infra: Infra, fetches: list[str]
) -> None:
    await start_run("fetcher", {})
    with count_crash_points() as occurrences:
        await run_until_idle()
    assert dict(occurrences) == {
        Crash.AFTER_TAKE: 1,
        Crash.AFTER_STEP_RAN: 1,
        Crash.AFTER_APPEND: 3,
        Crash.BEFORE_COMPLETE: 1,
        Crash.MID_PUBLISH: 2,
    }


@pytest.mark.deterministic
async def test_a_block_that_does_not_reach_its_crash_fails_saying_how_often_it_passed(
    infra: Infra,
) -> None:
    await start_run("echo", {"text": "a"})
    with pytest.raises(CrashPointNotReached) as raised, crash_at(Crash.AFTER_APPEND, nth=4):
        await run_until_idle()
    assert str(raised.value) == (
        "crash_at(Crash.AFTER_APPEND, nth=4): the block passed that point 3 time(s) and ended; "
        "crash at nth <= 3 (count_crash_points() counts them)"
    )


@pytest.mark.deterministic
async def test_crash_at_refuses_what_is_no_crash_point(infra: Infra) -> None:
    with pytest.raises(InvalidArgument, match="point must be a Crash"):
        crash_at("after-append", 1)  # type: ignore[arg-type]
    for nth in (0, -1, 1.5, True):
        with pytest.raises(InvalidArgument, match="nth must be an int >= 1"):
            crash_at(Crash.AFTER_APPEND, nth)  # type: ignore[arg-type]


@pytest.mark.deterministic
async def test_take_over_needs_a_crash_and_a_manual_clock(infra: Infra) -> None:
    await start_run("echo", {"text": "a"})
    with crash_at(Crash.MID_PUBLISH) as crash:
        with pytest.raises(CrashInjectionError, match="nothing crashed"):
            await crash.take_over()
        await run_until_idle()
    with (
        use_infra(dataclasses.replace(infra, clock=SystemClock())),
        pytest.raises(CrashInjectionError, match="ManualClock"),
    ):
        await crash.take_over()
    await crash.take_over()


def test_worker_crashed_is_no_exception_that_code_would_catch() -> None:
    assert issubclass(WorkerCrashed, BaseException)
    assert not issubclass(WorkerCrashed, Exception)


@pytest.mark.parametrize("port", ["bus", "queue", "store"])
def test_every_crash_point_is_a_method_of_its_port(port: str) -> None:
    protocol = {"bus": EventBusPort, "queue": QueuePort, "store": RunStorePort}[port]
    assert set(BOUNDARIES[port]) <= port_methods(protocol)


def test_every_crash_point_has_a_boundary() -> None:
    points = [boundary.point for methods in BOUNDARIES.values() for boundary in methods.values()]
    assert sorted(points, key=list(Crash).index) == list(Crash)


@pytest.mark.deterministic
@memory_only
async def test_the_crashed_worker_stays_dead_in_the_tasks_it_started(infra: Infra) -> None:
    run_id = await start_run("echo", {"text": "a"})
    with crash_at(Crash.AFTER_TAKE) as crash:
        leftover = asyncio.create_task(run_until_idle())  # started in the block
        await asyncio.wait([leftover])
    with pytest.raises(WorkerCrashed):
        leftover.result()
    with pytest.raises(WorkerCrashed, match="its process is gone"):
        await crash.crashing_infra.store.count_pending_outbox()
    await crash.take_over()
    assert [event_type for event_type, _ in await history(infra, run_id)][-1] == "RunFinished"
