"""A worker holds the lease of the run it executes; when the lease lapses another worker takes
the run over, and the old worker can no longer append to it."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import timedelta

import pytest

from agents_run import (
    Infra,
    ManualClock,
    RunStatus,
    cancel_run,
    register_agent,
    run_worker_once,
    start_run,
)
from agents_run.adapters.memory import InMemoryQueue, InMemoryRunStore
from agents_run.application.agents import unregister_agent
from agents_run.application.infra import use_infra
from agents_run.application.take_over_runs import take_over_lapsed_runs
from agents_run.domain.json_data import JsonObject
from tests.leaks import leaves_work_on_purpose

# The worker only appends: these tests stop before publishing.
pytestmark = leaves_work_on_purpose
DEADLINE = 10.0


@dataclass
class Gate:
    """An agent that records one step, then waits for the test before its second."""

    name: str = "waits-for-the-test"
    reached: asyncio.Event = field(default_factory=asyncio.Event)
    opened: asyncio.Event = field(default_factory=asyncio.Event)


@pytest.fixture
def gate() -> Iterator[Gate]:
    gate = Gate()

    @register_agent(gate.name)
    async def agent(input: JsonObject) -> AsyncIterator[JsonObject]:
        yield {"step": 1}
        gate.reached.set()
        await gate.opened.wait()
        yield {"step": 2}

    yield gate
    unregister_agent(gate.name)


def clock_of(infra: Infra) -> ManualClock:
    assert isinstance(infra.clock, ManualClock), "these tests move the infra's clock"
    return infra.clock


async def worker_in_the_middle_of(gate: Gate) -> tuple[str, asyncio.Task[bool]]:
    run_id = await start_run(gate.name, {})
    worker = asyncio.create_task(run_worker_once())
    await asyncio.wait_for(gate.reached.wait(), DEADLINE)
    return run_id, worker


async def history(infra: Infra, run_id: str) -> list[tuple[str, JsonObject]]:
    return [(event.type, event.data) for event in await infra.store.read_events(run_id)]


@pytest.mark.deterministic
async def test_a_worker_holds_the_lease_of_its_run_until_the_run_ends(
    infra: Infra, gate: Gate
) -> None:
    now = infra.clock.now()
    run_id, worker = await worker_in_the_middle_of(gate)
    held = await infra.store.get_run(run_id)
    assert (held.attempt, held.lease_until) == (1, now + timedelta(seconds=infra.lease_seconds))
    gate.opened.set()
    assert await asyncio.wait_for(worker, DEADLINE) is True
    assert (await infra.store.get_run(run_id)).status is RunStatus.FINISHED
    clock_of(infra).advance(infra.lease_seconds)
    assert await take_over_lapsed_runs() == [], "an ended run is nobody's to take"


@pytest.mark.deterministic
async def test_a_run_whose_lease_lapsed_is_taken_over_and_its_old_worker_drops_it_quietly(
    infra: Infra, gate: Gate, caplog: pytest.LogCaptureFixture
) -> None:
    run_id, stalled_worker = await worker_in_the_middle_of(gate)
    clock_of(infra).advance(infra.lease_seconds - 0.001)
    assert await take_over_lapsed_runs() == [], "a lease is live until its very end"

    clock_of(infra).advance(0.001)  # the worker stopped renewing: a GC pause, a partition
    assert await take_over_lapsed_runs() == [run_id]
    taken_over = await history(infra, run_id)
    assert taken_over == [
        ("RunStarted", {"agent": gate.name}),
        ("RunStep", {"step": 1}),
        (
            "RunFailed",
            {
                "error_type": "WorkerLost",
                "message": "the worker running attempt 1 stopped before the run ended; start a "
                "new run to retry",
            },
        ),
    ]
    assert (await infra.store.get_run(run_id)).attempt == 2

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="agents_run"):
        gate.opened.set()  # the old worker wakes up and tries to record step 2
        assert await asyncio.wait_for(stalled_worker, DEADLINE) is True
    assert await history(infra, run_id) == taken_over, "the old attempt appended nothing"
    about_the_run = [r for r in caplog.records if run_id in r.getMessage()]
    assert [(r.levelname, r.getMessage()) for r in about_the_run] == [
        (
            "INFO",
            f"run {run_id} dropped by this worker: run {run_id!r} is held by attempt 2, not 1: "
            "its lease ran out and another worker took the run",
        )
    ]
    assert await take_over_lapsed_runs() == []


# On real servers the cancel may reach the stalled worker before the take-over does.
@pytest.mark.deterministic_in_memory
async def test_a_run_taken_over_ends_cancelled_where_that_was_asked(
    infra: Infra, gate: Gate
) -> None:
    run_id, stalled_worker = await worker_in_the_middle_of(gate)
    assert await cancel_run(run_id) is True
    clock_of(infra).advance(infra.lease_seconds)
    taken_over = await take_over_lapsed_runs()
    if isinstance(infra.store, InMemoryRunStore):
        # In memory the take-over runs before the stalled worker's next turn; on real servers
        # the cancel's push may reach that worker first, which interrupts its step and ends
        # the run itself. Either way it ends cancelled, once.
        assert taken_over == [run_id]
    gate.opened.set()
    assert await asyncio.wait_for(stalled_worker, DEADLINE) is True
    assert [event_type for event_type, _ in await history(infra, run_id)] == [
        "RunStarted",
        "RunStep",
        "RunCancelled",
    ]


@pytest.mark.deterministic
async def test_a_worker_renews_its_lease_while_the_run_goes_on(infra: Infra, gate: Gate) -> None:
    with use_infra(dataclasses.replace(infra, lease_seconds=0.5)) as short_leases:
        run_id, worker = await worker_in_the_middle_of(gate)
        clock_of(infra).advance(0.4)
        renewed_until = infra.clock.now() + timedelta(seconds=0.5)
        async with asyncio.timeout(DEADLINE):
            while (await infra.store.get_run(run_id)).lease_until != renewed_until:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        clock_of(infra).advance(0.2)  # past the first lease, not past the renewed one
        assert await take_over_lapsed_runs() == []
        gate.opened.set()
        assert await asyncio.wait_for(worker, DEADLINE) is True
    assert short_leases.lease_seconds == 0.5
    assert (await infra.store.get_run(run_id)).status is RunStatus.FINISHED


@pytest.mark.deterministic
@pytest.mark.agents_run_memory_only(reason="InMemoryQueue.requeue_active plays the lapsed lock")
async def test_a_job_handed_out_again_while_its_worker_renews_the_lease_leaves_the_run_alone(
    infra: Infra, gate: Gate
) -> None:
    # A worker cut off from Redis for longer than the job's lock: the queue hands the job to
    # another worker, while the first one goes on with the run through the store.
    run_id, cut_off_worker = await worker_in_the_middle_of(gate)
    assert isinstance(infra.queue, InMemoryQueue)
    infra.queue.requeue_active()
    assert await run_worker_once() is True
    assert (await infra.store.get_run(run_id)).attempt == 1
    gate.opened.set()
    assert await asyncio.wait_for(cut_off_worker, DEADLINE) is True
    assert [event_type for event_type, _ in await history(infra, run_id)] == [
        "RunStarted",
        "RunStep",
        "RunStep",
        "RunFinished",
    ]
    assert (await infra.queue.counts()).total == 0
