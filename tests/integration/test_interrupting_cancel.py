"""cancel_run interrupts a running agent's in-flight await: its finally blocks run, nothing of
the interrupted step is recorded, and the run ends RunCancelled. A worker told to stop interrupts
it the same way."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from agents_run import (
    Infra,
    RunContext,
    cancel_run,
    run_worker_once,
    running_worker,
    start_run,
    stream_run,
    wait_for_run,
)
from agents_run.application.processes import serve_worker
from agents_run.domain.json_data import JsonObject
from tests.leaks import leaves_work_on_purpose

pytestmark = pytest.mark.deterministic_in_memory

Register = Callable[..., Callable[[Any], Any]]


class LongStep:
    """An agent whose second step is a call that never returns unless interrupted."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.unwound: list[str] = []
        self.calls_ended: list[str] = []

    async def call(self) -> str:
        self.entered.set()
        try:
            await asyncio.Event().wait()  # a 60 s LLM call, as far as the test can tell
        finally:
            self.unwound.append("call")
        self.calls_ended.append("call")
        return "never"

    async def agent(self, input: JsonObject, ctx: RunContext) -> AsyncIterator[JsonObject]:
        try:
            yield {"step": await ctx.step("quick", lambda: 1)}
            yield {"step": await ctx.step("slow", self.call)}
        finally:
            self.unwound.append("agent")


async def test_cancel_interrupts_the_step_in_flight(infra: Infra, register: Register) -> None:
    long = LongStep()
    register("long-step")(long.agent)
    async with running_worker():
        run_id = await start_run("long-step", {})
        await long.entered.wait()
        assert await cancel_run(run_id) is True
        terminal = await wait_for_run(run_id, timeout=30)
    assert terminal.type == "RunCancelled"
    assert long.unwound == ["call", "agent"]  # finally blocks ran, innermost first
    assert long.calls_ended == []
    events = await infra.store.read_events(run_id)
    assert [(e.type, e.data) for e in events] == [
        ("RunStarted", {"agent": "long-step"}),
        ("RunStep", {"step": 1}),
        ("RunCancelled", {}),
    ]
    assert [s.name for s in await infra.store.read_steps(run_id)] == ["quick"]


@leaves_work_on_purpose  # run_worker_once only appends: publishing is not its job
async def test_run_worker_once_ends_a_run_cancelled_mid_step(
    infra: Infra, register: Register
) -> None:
    long = LongStep()
    register("long-step")(long.agent)
    run_id = await start_run("long-step", {})

    async def cancel_once_inside() -> bool:
        await long.entered.wait()
        return await cancel_run(run_id)

    canceller = asyncio.create_task(cancel_once_inside())
    assert await run_worker_once() is True
    assert await canceller is True
    events = await infra.store.read_events(run_id)
    assert [e.type for e in events] == ["RunStarted", "RunStep", "RunCancelled"]
    assert await cancel_run(run_id) is False


async def test_a_live_stream_sees_the_cancel_as_the_runs_end(
    infra: Infra, register: Register
) -> None:
    long = LongStep()
    register("long-step")(long.agent)
    async with running_worker():
        run_id = await start_run("long-step", {})
        seen: list[str] = []
        async for event in stream_run(run_id):
            seen.append(event.type)
            if event.type == "RunStep":
                await long.entered.wait()
                await cancel_run(run_id)
    assert seen == ["RunStarted", "RunStep", "RunCancelled"]


@pytest.mark.agents_run_memory_only(reason="counts loop turns: networked stores do real I/O")
async def test_in_memory_the_cancel_lands_within_a_few_turns_of_the_loop(
    infra: Infra, register: Register
) -> None:
    long = LongStep()
    register("long-step")(long.agent)
    async with running_worker():
        run_id = await start_run("long-step", {})
        await long.entered.wait()
        await cancel_run(run_id)
        turns = 0
        while "call" not in long.unwound:
            await asyncio.sleep(0)
            turns += 1
        assert turns <= 10
        assert (await wait_for_run(run_id, timeout=30)).type == "RunCancelled"


async def test_an_agent_that_swallows_the_cancel_still_ends_cancelled(
    infra: Infra, register: Register
) -> None:
    entered = asyncio.Event()

    @register("stubborn")
    async def agent(input: JsonObject) -> AsyncIterator[JsonObject]:
        entered.set()
        with contextlib.suppress(asyncio.CancelledError):  # swallowed: the yield is not recorded
            await asyncio.Event().wait()
        yield {"after": "cancel"}

    async with running_worker():
        run_id = await start_run("stubborn", {})
        await entered.wait()
        await cancel_run(run_id)
        assert (await wait_for_run(run_id, timeout=30)).type == "RunCancelled"
    assert [e.type for e in await infra.store.read_events(run_id)] == [
        "RunStarted",
        "RunCancelled",
    ]


async def test_a_stopped_worker_interrupts_the_step_in_flight(
    infra: Infra, register: Register
) -> None:
    # What `agents-run worker --grace N` does N seconds after SIGTERM.
    long = LongStep()
    register("long-step")(long.agent)
    run_id = await start_run("long-step", {})
    draining, stop = asyncio.Event(), asyncio.Event()
    worker = asyncio.create_task(serve_worker(draining=draining, stop=stop, idle_poll=0.01))
    await long.entered.wait()
    draining.set()
    stop.set()  # the grace is over
    assert await asyncio.wait_for(worker, 30) == 1
    events = await infra.store.read_events(run_id)
    assert [e.type for e in events] == ["RunStarted", "RunStep", "RunFailed"]
    assert events[-1].data == {
        "error_type": "WorkerShutdown",
        "message": "the worker was stopped during the step after seq 2; start a new run to retry",
    }
    assert long.unwound == ["call", "agent"]
    async with running_worker():
        pass  # publishes what the worker appended


@pytest.mark.parametrize("ending", ["returns", "raises"])
async def test_true_means_run_cancelled_even_where_the_agent_ends_before_the_interruption(
    infra: Infra, register: Register, ending: str
) -> None:
    answers: list[bool] = []

    @register("ends-right-after-its-cancel")
    async def agent(input: JsonObject, ctx: RunContext) -> AsyncIterator[JsonObject]:
        # Its own cancellation, from inside a step: nothing awaits between it and the end.
        answers.append(await ctx.step("cancel", cancel_run, ctx.run_id))
        if ending == "raises":
            raise RuntimeError("done anyway")
        if not answers:
            yield {}  # an async generator that yields nothing

    run_id = await start_run("ends-right-after-its-cancel", {})
    async with running_worker():
        terminal = await wait_for_run(run_id, timeout=30)
    # In memory the step returns first; on PostgreSQL its NOTIFY may interrupt the step itself.
    assert answers in ([True], [])
    assert (terminal.type, terminal.data) == ("RunCancelled", {})
    assert (await infra.store.get_run(run_id)).status == "cancelled"
