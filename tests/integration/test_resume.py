"""A run whose worker vanished mid-run resumes on the worker that takes it over: the agent is
called again and replayed against the run's record, then goes on live."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from agents_run import (
    Infra,
    ManualClock,
    RunContext,
    register_agent,
    run_until_idle,
    run_worker_once,
    start_run,
)
from agents_run.application.replay import MAX_RUN_ATTEMPTS
from agents_run.application.take_over_runs import take_over_lapsed_runs
from agents_run.domain.json_data import JsonObject
from pytest_agents_run import Crash, crash_at
from tests.leaks import leaves_work_on_purpose

# The vanished workers are cancelled, not finished: these tests stop before publishing.
pytestmark = leaves_work_on_purpose
DEADLINE = 10.0


@dataclass
class Researcher:
    """An agent with two recorded effects whose first worker hangs for good after the second."""

    name: str = "researcher"
    version: int = 1
    calls: list[str] = field(default_factory=list)
    vanished: asyncio.Event = field(default_factory=asyncio.Event)

    async def search(self, query: str) -> list[str]:
        self.calls.append("search")
        return [f"{query} 1", f"{query} 2"]

    def summarise(self, hits: list[str]) -> str:
        self.calls.append("summarise")
        return " + ".join(hits)

    def register(self) -> None:
        @register_agent(self.name)
        async def agent(input: JsonObject, ctx: RunContext) -> AsyncIterator[JsonObject]:
            started = ctx.now()
            hits = await ctx.step(f"search v{self.version}", self.search, input["q"])
            yield {"hits": hits, "at": started.isoformat(), "v": self.version}
            summary = await ctx.step("summarise", self.summarise, hits)
            if ctx.attempt == 1:
                self.vanished.set()
                await asyncio.Event().wait()  # this worker is gone: it never runs again
            yield {"summary": summary}


async def lapse_mid_run(
    infra: Infra, agent: str, input: JsonObject, hung: asyncio.Event
) -> tuple[str, asyncio.Task[bool]]:
    """A run of ``agent`` whose worker hangs once ``hung`` is set, then lets its lease lapse."""
    run_id = await start_run(agent, input)
    worker = asyncio.create_task(run_worker_once())
    await asyncio.wait_for(hung.wait(), DEADLINE)
    assert isinstance(infra.clock, ManualClock)
    infra.clock.advance(infra.lease_seconds)  # it renews no more: its lease lapses
    return run_id, worker


async def taken_over_after_lapse(infra: Infra, agent: str, hung: asyncio.Event) -> str:
    """``lapse_mid_run``, then the run taken over (and resumed) here."""
    run_id, worker = await lapse_mid_run(infra, agent, {}, hung)
    assert await take_over_lapsed_runs() == [run_id]
    await forget(worker)
    return run_id


async def vanish_mid_run(infra: Infra, researcher: Researcher) -> tuple[str, asyncio.Task[bool]]:
    researcher.register()
    return await lapse_mid_run(infra, researcher.name, {"q": "tides"}, researcher.vanished)


async def forget(worker: asyncio.Task[Any]) -> None:
    worker.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await worker


async def history(infra: Infra, run_id: str) -> list[tuple[str, JsonObject]]:
    return [(event.type, event.data) for event in await infra.store.read_events(run_id)]


@pytest.mark.deterministic
async def test_a_run_whose_worker_vanished_resumes_and_runs_every_step_and_effect_once(
    infra: Infra,
) -> None:
    researcher = Researcher()
    run_id, vanished_worker = await vanish_mid_run(infra, researcher)
    assert await take_over_lapsed_runs() == [run_id]
    await forget(vanished_worker)
    events = await history(infra, run_id)
    first = {"hits": ["tides 1", "tides 2"], "v": 1}
    assert [(t, {k: v for k, v in d.items() if k != "at"}) for t, d in events] == [
        ("RunStarted", {"agent": "researcher"}),
        ("RunStep", first),
        ("RunResumed", {"attempt": 2, "resumed_after_seq": 2}),  # the first step not again
        ("RunStep", {"summary": "tides 1 + tides 2"}),
        ("RunFinished", {}),
    ]
    # Both effects were recorded before the worker vanished: the replay returned them.
    assert researcher.calls == ["search", "summarise"]
    assert (await infra.store.get_run(run_id)).attempt == 2


@pytest.mark.deterministic
async def test_ctx_now_returns_the_recorded_time_on_resume(infra: Infra) -> None:
    researcher = Researcher()
    run_id, vanished_worker = await vanish_mid_run(infra, researcher)
    first_time = (await infra.store.read_events(run_id))[1].data["at"]
    # The clock moved a lease on: a live ctx.now() would differ, and so the first yield.
    assert first_time != infra.clock.now().isoformat()
    assert await take_over_lapsed_runs() == [run_id]
    await forget(vanished_worker)
    assert (await history(infra, run_id))[-1] == ("RunFinished", {})


@pytest.mark.deterministic
async def test_a_changed_yield_ends_the_resumed_run_nondeterministic_replay(
    infra: Infra,
) -> None:
    researcher = Researcher()
    run_id, vanished_worker = await vanish_mid_run(infra, researcher)
    researcher.version = 2  # new code deployed while the run was in flight...
    assert await take_over_lapsed_runs() == [run_id]
    await forget(vanished_worker)
    *_, (last_type, last_data) = await history(infra, run_id)
    assert last_type == "RunFailed"
    assert last_data["error_type"] == "NondeterministicReplay"
    # ...whose step has another name: the first difference is in the journal (entry 1 is now).
    assert last_data["message"] == (
        "the agent departed from the run's record at journal entry 2 name: recorded "
        '"search v1", now "search v2"'
    )
    assert researcher.calls == ["search", "summarise"], "a diverging step's fn is not called"


@pytest.mark.deterministic
async def test_a_yield_differing_from_the_record_is_reported_with_both_values(
    infra: Infra,
) -> None:
    hung = asyncio.Event()

    @register_agent("counts")
    async def agent(input: JsonObject, ctx: RunContext) -> AsyncIterator[JsonObject]:
        yield {"n": ctx.attempt}  # depends on the attempt: not replayable
        hung.set()
        await asyncio.Event().wait()

    run_id = await taken_over_after_lapse(infra, "counts", hung)
    assert (await history(infra, run_id))[-2:] == [
        ("RunResumed", {"attempt": 2, "resumed_after_seq": 2}),
        (
            "RunFailed",
            {
                "error_type": "NondeterministicReplay",
                "message": "the agent departed from the run's record at seq 2 RunStep data.n: "
                "recorded 1, now 2",
            },
        ),
    ]


@pytest.mark.deterministic
async def test_an_agent_that_ends_before_its_recorded_steps_is_a_divergence(
    infra: Infra,
) -> None:
    hung = asyncio.Event()

    @register_agent("shrinks")
    async def agent(input: JsonObject, ctx: RunContext) -> AsyncIterator[JsonObject]:
        if ctx.attempt == 1:
            yield {"step": 1}
            hung.set()
            await asyncio.Event().wait()

    run_id = await taken_over_after_lapse(infra, "shrinks", hung)
    _, last_data = (await history(infra, run_id))[-1]
    assert last_data["message"] == (
        'the agent departed from the run\'s record at seq 2 RunStep: recorded {"step": 1}, '
        "now the agent ended"
    )


@pytest.mark.deterministic
async def test_a_run_that_loses_every_worker_ends_after_a_bounded_number_of_attempts(
    infra: Infra,
) -> None:
    reached: asyncio.Queue[int] = asyncio.Queue()

    @register_agent("kills-its-worker")
    async def agent(input: JsonObject, ctx: RunContext) -> AsyncIterator[JsonObject]:
        yield {"step": 1}
        reached.put_nowait(ctx.attempt)
        await asyncio.Event().wait()  # every worker that runs this is lost here

    assert isinstance(infra.clock, ManualClock)
    run_id = await start_run("kills-its-worker", {})
    lost: list[asyncio.Task[object]] = [asyncio.create_task(run_worker_once())]
    for attempt in range(1, MAX_RUN_ATTEMPTS + 1):
        assert await asyncio.wait_for(reached.get(), DEADLINE) == attempt
        infra.clock.advance(infra.lease_seconds)
        lost.append(asyncio.create_task(take_over_lapsed_runs()))
    assert await asyncio.wait_for(lost.pop(), DEADLINE) == [run_id]
    for worker in lost:
        await forget(worker)
    events = await history(infra, run_id)
    resumed = [data["attempt"] for event_type, data in events if event_type == "RunResumed"]
    assert resumed == list(range(2, MAX_RUN_ATTEMPTS + 1))
    assert events[-1] == (
        "RunFailed",
        {
            "error_type": "TooManyAttempts",
            "message": f"the workers of {MAX_RUN_ATTEMPTS} attempts stopped before the run "
            f"ended (at most {MAX_RUN_ATTEMPTS}); start a new run to retry",
        },
    )


@pytest.mark.deterministic
@pytest.mark.agents_run_memory_only(reason="take_over hands the crashed worker's job on in memory")
async def test_a_step_that_failed_and_was_caught_runs_again_on_resume_without_a_divergence(
    infra: Infra,
) -> None:
    calls: list[str] = []

    def unavailable() -> str:
        calls.append("primary")
        raise ConnectionError("the primary is down")

    def backup() -> str:
        calls.append("backup")
        return "from the backup"

    @register_agent("falls-back")
    async def agent(input: JsonObject, ctx: RunContext) -> AsyncIterator[JsonObject]:
        try:
            answer = await ctx.step("primary", unavailable)
        except ConnectionError:
            answer = await ctx.step("backup", backup)  # journal entry 2: 1 failed, unrecorded
        yield {"answer": answer}
        yield {"done": True}

    run_id = await start_run("falls-back", {})
    with crash_at(Crash.AFTER_APPEND, nth=2) as crash:  # after the first RunStep
        await run_until_idle()
    await crash.take_over()
    assert [event.type for event in await infra.store.read_events(run_id)][-2:] == [
        "RunStep",
        "RunFinished",
    ]
    assert calls == ["primary", "backup", "primary"], "the failed step again, the backup replayed"
