"""A worker process takes over lapsed runs like queued jobs: each free worker loop takes one,
so take-overs run concurrently within the worker's concurrency and are drained and stopped
like any other run."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import pytest

from agents_run import Infra, ManualClock, RunContext, register_agent, start_run
from agents_run.application.agents import unregister_agent
from agents_run.application.leases import acquire_lease
from agents_run.application.processes import serve_worker
from agents_run.domain.events import EventType
from agents_run.domain.json_data import JsonObject
from tests.leaks import leaves_work_on_purpose

# The dead workers' jobs stay taken; in services mode the loops interleave by I/O timing.
pytestmark = [leaves_work_on_purpose, pytest.mark.deterministic_in_memory]
DEADLINE = 10.0
NEVER = 3600.0  # an interval no test waits out: what happens is driven by the test alone


@dataclass
class Resumed:
    """An agent whose resumed attempts wait at a gate that the test opens."""

    name: str = "waits-when-resumed"
    entered: asyncio.Queue[str] = field(default_factory=asyncio.Queue)
    opened: asyncio.Event = field(default_factory=asyncio.Event)


@pytest.fixture
def resumed() -> Iterator[Resumed]:
    agent_of = Resumed()

    @register_agent(agent_of.name)
    async def agent(input: JsonObject, ctx: RunContext) -> AsyncIterator[JsonObject]:
        yield {"step": 1}
        agent_of.entered.put_nowait(ctx.run_id)
        await agent_of.opened.wait()
        yield {"step": 2}

    yield agent_of
    unregister_agent(agent_of.name)


async def left_by_a_dead_worker(infra: Infra, agent: str) -> str:
    """A run as a worker killed -9 after its first step leaves it: job taken, lease of attempt
    1 never renewed, RunStarted and one RunStep recorded."""
    run_id = await start_run(agent, {})
    assert (await infra.queue.take_next()) is not None
    held = await acquire_lease(infra, run_id)
    assert held is not None
    now = infra.clock.now()
    recorded: list[tuple[EventType, JsonObject]] = [
        (EventType.RUN_STARTED, {"agent": agent}),
        (EventType.RUN_STEP, {"step": 1}),
    ]
    for event_type, data in recorded:
        await infra.store.append_event(run_id, event_type, data, at=now, attempt=held.attempt)
    return run_id


def lapse_every_lease(infra: Infra) -> None:
    assert isinstance(infra.clock, ManualClock), "these tests move the infra's clock"
    infra.clock.advance(infra.lease_seconds)


def worker(concurrency: int) -> tuple[asyncio.Task[int], asyncio.Event, asyncio.Event]:
    draining, stop = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(
        serve_worker(
            draining=draining,
            stop=stop,
            concurrency=concurrency,
            idle_poll=NEVER,
            lease_check_interval=NEVER,
        )
    )
    return task, draining, stop


async def types_of(infra: Infra, run_id: str) -> list[str]:
    return [event.type for event in await infra.store.read_events(run_id)]


async def test_take_overs_run_at_once_up_to_the_workers_concurrency(
    infra: Infra, resumed: Resumed
) -> None:
    run_ids = [await left_by_a_dead_worker(infra, resumed.name) for _ in range(3)]
    lapse_every_lease(infra)
    serving, draining, _ = worker(concurrency=2)
    # One lease check lists all three; both loops take one each, and execute them at once.
    first = {await asyncio.wait_for(resumed.entered.get(), DEADLINE) for _ in range(2)}
    (waiting,) = set(run_ids) - first
    assert (await infra.store.get_run(waiting)).attempt == 1, "no free loop: not taken yet"
    resumed.opened.set()
    # The first loop to be free takes the third, with no need for another lease check.
    assert await asyncio.wait_for(resumed.entered.get(), DEADLINE) == waiting
    async with asyncio.timeout(DEADLINE):
        for run_id in run_ids:
            while not (await infra.store.get_run(run_id)).status.is_terminal:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
    draining.set()
    assert await asyncio.wait_for(serving, DEADLINE) == 3
    for run_id in run_ids:
        assert await types_of(infra, run_id) == [
            "RunStarted",
            "RunStep",
            "RunResumed",
            "RunStep",
            "RunFinished",
        ]
        assert (await infra.store.get_run(run_id)).attempt == 2


async def test_a_draining_worker_lets_its_take_overs_finish_and_takes_no_more(
    infra: Infra, resumed: Resumed
) -> None:
    run_ids = [await left_by_a_dead_worker(infra, resumed.name) for _ in range(2)]
    lapse_every_lease(infra)
    serving, draining, _ = worker(concurrency=1)
    taken = await asyncio.wait_for(resumed.entered.get(), DEADLINE)
    draining.set()  # SIGTERM: the take-over in hand goes on, the other run is left to others
    resumed.opened.set()
    assert await asyncio.wait_for(serving, DEADLINE) == 1
    assert (await types_of(infra, taken))[-1] == "RunFinished"
    (left,) = set(run_ids) - {taken}
    assert await types_of(infra, left) == ["RunStarted", "RunStep"]
    assert (await infra.store.get_run(left)).attempt == 1


async def test_a_stopped_worker_ends_its_take_overs_at_their_next_step(
    infra: Infra, resumed: Resumed
) -> None:
    run_id = await left_by_a_dead_worker(infra, resumed.name)
    lapse_every_lease(infra)
    serving, draining, stop = worker(concurrency=1)
    assert await asyncio.wait_for(resumed.entered.get(), DEADLINE) == run_id
    draining.set()
    stop.set()  # the grace period ran out
    resumed.opened.set()
    assert await asyncio.wait_for(serving, DEADLINE) == 1
    *_, last = await infra.store.read_events(run_id)
    assert (last.type, last.data["error_type"]) == ("RunFailed", "WorkerShutdown")
