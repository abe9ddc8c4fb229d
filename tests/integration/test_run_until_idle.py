from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from agents_run import (
    DrainDidNotSettle,
    Infra,
    InvalidArgument,
    cancel_run,
    register_agent,
    run_until_idle,
    run_worker_once,
    start_run,
)
from agents_run.domain.json_data import JsonObject
from tests.leaks import leaves_work_on_purpose

pytestmark = pytest.mark.deterministic


async def test_run_until_idle_runs_every_job_and_publishes_everything(infra: Infra) -> None:
    run_ids = [await start_run("echo", {"text": "x y"}) for _ in range(3)]
    assert await run_until_idle() == 3
    assert (await infra.queue.counts()).total == 0
    assert await infra.store.pending_outbox() == []
    for run_id in run_ids:
        assert (await infra.store.get_run(run_id)).status == "finished"
    assert await run_until_idle() == 0


@leaves_work_on_purpose
async def test_work_that_never_settles_raises_naming_what_is_left(infra: Infra) -> None:
    @register_agent("spawns-forever")
    async def agent(input: JsonObject) -> AsyncIterator[JsonObject]:
        await start_run("spawns-forever", {})
        yield {}

    await start_run("spawns-forever", {})
    with pytest.raises(DrainDidNotSettle, match="max_steps=5 with work left: 1 job"):
        await run_until_idle(max_steps=5)


@pytest.mark.parametrize("max_steps", [0, -1, True, 2.5])
async def test_max_steps_must_be_a_positive_int(infra: Infra, max_steps: object) -> None:
    with pytest.raises(InvalidArgument, match="max_steps"):
        await run_until_idle(max_steps)  # type: ignore[arg-type]


@leaves_work_on_purpose  # the endless run's job is retried: that is the point
async def test_an_agent_that_never_ends_raises_instead_of_hanging(infra: Infra) -> None:
    @register_agent("endless")
    async def agent(input: JsonObject) -> AsyncIterator[JsonObject]:
        while True:
            yield {"still": "going"}

    run_id = await start_run("endless", {})
    with pytest.raises(DrainDidNotSettle, match="agent 'endless' yielded more than 50 steps"):
        await run_until_idle(max_steps_per_run=50)
    run = await infra.store.get_run(run_id)
    assert (run.status, run.last_seq) == ("failed", 52)  # RunStarted, 50 steps, RunFailed


@pytest.mark.agents_run_memory_only(reason="a networked queue recovers it after its lock expires")
async def test_a_job_whose_worker_task_was_cancelled_is_run_again(infra: Infra) -> None:
    started = asyncio.Event()

    @register_agent("hangs-once")
    async def agent(input: JsonObject) -> AsyncIterator[JsonObject]:
        if not started.is_set():
            started.set()
            await asyncio.Event().wait()  # the first worker is cancelled here
        yield {"step": 1}

    run_id = await start_run("hangs-once", {})
    worker = asyncio.create_task(run_worker_once())
    await asyncio.wait_for(started.wait(), 2)
    worker.cancel()
    with pytest.raises(asyncio.CancelledError):
        await worker
    assert await cancel_run(run_id) is True  # only a flag: the run is running, no worker
    await run_until_idle()
    assert [e.type for e in await infra.store.read_events(run_id)] == [
        "RunStarted",
        "RunCancelled",  # what was asked for; without the request it would be WorkerLost
    ]


async def test_the_step_limit_per_run_lets_a_run_of_exactly_that_many_steps_finish(
    infra: Infra,
) -> None:
    run_id = await start_run("echo", {"text": "a b c"})
    assert await run_until_idle(max_steps=1, max_steps_per_run=3) == 1
    assert (await infra.store.get_run(run_id)).status == "finished"


@pytest.mark.agents_run_memory_only(reason="a networked queue retries a failed job after a delay")
async def test_an_agent_waiting_forever_raises_at_the_timeout(infra: Infra) -> None:
    @register_agent("waits-forever", resume=False)
    async def agent(input: JsonObject) -> AsyncIterator[JsonObject]:
        await asyncio.Event().wait()
        yield {}

    run_id = await start_run("waits-forever", {})
    with pytest.raises(DrainDidNotSettle, match=r"took longer than timeout=0\.05s"):
        await run_until_idle(timeout=0.05)
    # The cancelled worker failed the job on its way out: it is retried, and the retry ends
    # the run, which had started, WorkerLost.
    assert await run_until_idle() == 1
    assert [e.type for e in await infra.store.read_events(run_id)] == ["RunStarted", "RunFailed"]
