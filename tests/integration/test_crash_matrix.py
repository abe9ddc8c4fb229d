"""The worker dies at every boundary of its work, in several agents, at the first, second and last
time it gets there; another worker takes over. Whatever the case, the run ends exactly once and
whole: seqs gap-free in the store and in a live stream, no RunStep twice, every recorded
``ctx.step`` executed once (only the one in flight at the crash twice)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from agents_run import (
    Infra,
    RunContext,
    RunStatus,
    register_agent,
    run_until_idle,
    start_run,
    stream_run,
)
from agents_run.domain.journal import StepKind
from agents_run.domain.json_data import JsonObject
from pytest_agents_run import Crash, count_crash_points, crash_at

# CrashInjection.take_over hands the crashed worker's job on with InMemoryQueue.requeue_active.
pytestmark = pytest.mark.agents_run_memory_only(
    reason="CrashInjection.take_over hands a crashed worker's job on through InMemoryQueue"
)
DEADLINE = 30.0
Calls = Counter[str]


def counted(calls: Calls, name: str, result: Callable[..., Any]) -> Callable[..., Any]:
    """A step's ``fn``: counts its executions in ``calls``."""

    def fn(*args: Any) -> Any:
        calls[name] += 1
        return result(*args)

    return fn


def register_researcher(calls: Calls) -> None:
    async def search(query: str) -> list[str]:
        calls["search"] += 1
        return [f"{query} 1", f"{query} 2"]

    @register_agent("researcher")
    async def agent(input: JsonObject, ctx: RunContext) -> AsyncIterator[JsonObject]:
        hits = await ctx.step("search", search, input["q"])
        yield {"i": 1, "hits": hits}
        page = await ctx.step(
            "fetch", counted(calls, "fetch", lambda url: f"page of {url}"), hits[0]
        )
        yield {"i": 2, "page": page}
        summary = await ctx.step("summarise", counted(calls, "summarise", len), page)
        yield {"i": 3, "summary": summary}


def register_clocked(calls: Calls) -> None:
    @register_agent("clocked")
    async def agent(input: JsonObject, ctx: RunContext) -> AsyncIterator[JsonObject]:
        started = ctx.now()
        roll = ctx.random().randint(1, 1000)
        yield {"i": 1, "started": started.isoformat(), "roll": roll}
        await ctx.sleep(30)
        woke = ctx.now()
        token = await ctx.step("token", counted(calls, "token", lambda n: f"token-{n}"), roll)
        yield {"i": 2, "waited": (woke - started).total_seconds(), "token": token}
        yield {"i": 3, "roll": ctx.random().randint(1, 1000)}


def register_raiser(calls: Calls) -> None:
    @register_agent("raiser")
    async def agent(input: JsonObject, ctx: RunContext) -> AsyncIterator[JsonObject]:
        prepared = await ctx.step("prepare", counted(calls, "prepare", lambda: 41))
        yield {"i": 1, "prepared": prepared}
        checked = await ctx.step("check", counted(calls, "check", lambda n: n + 1), prepared)
        yield {"i": 2, "checked": checked}
        raise ValueError("the check found a problem")


def register_no_resume(calls: Calls) -> None:
    @register_agent("no-resume", resume=False)
    async def agent(input: JsonObject, ctx: RunContext) -> AsyncIterator[JsonObject]:
        charged = await ctx.step("charge", counted(calls, "charge", lambda: "charged"))
        yield {"i": 1, "charged": charged}
        shipped = await ctx.step("ship", counted(calls, "ship", lambda: "shipped"))
        yield {"i": 2, "shipped": shipped}


def register_parallel(calls: Calls) -> None:
    async def slow(what: str) -> str:
        calls["slow"] += 1
        for _ in range(3):
            await asyncio.sleep(0)  # ends after "fast", which was called after it
        return f"slow {what}"

    @register_agent("parallel")
    async def agent(input: JsonObject, ctx: RunContext) -> AsyncIterator[JsonObject]:
        plan = await ctx.step("plan", counted(calls, "plan", lambda: "the plan"))
        slowly, quickly = await asyncio.gather(
            ctx.step("slow", slow, plan), ctx.step("fast", counted(calls, "fast", len), plan)
        )
        yield {"i": 1, "slow": slowly, "fast": quickly}
        report = await ctx.step("report", counted(calls, "report", lambda: "the report"))
        yield {"i": 2, "report": report}


@dataclass(frozen=True)
class Agent:
    name: str
    input: JsonObject
    register: Callable[[Calls], None]
    steps: list[str]  # its ctx.step names, in the order their results are recorded
    yields: int  # the RunSteps of a run that is not interrupted
    end: tuple[str, str | None]  # its terminal event type, and error_type where it fails
    # How often a run passes each point (test_each_agent_passes_each_point_as_often_as_listed).
    occurrences: dict[Crash, int]
    resume: bool = True
    # The steps whose fn had run, or was running, when the nth step's result was to be
    # recorded: by default that step alone.
    in_flight: dict[int, set[str]] = field(default_factory=dict)

    def in_flight_at(self, nth: int) -> set[str]:
        return self.in_flight.get(nth, {self.steps[nth - 1]})


def _points(take: int, step_ran: int, append: int, publish: int, complete: int) -> dict[Crash, int]:
    counts = dict(zip(Crash, (take, step_ran, append, publish, complete), strict=True))
    return {point: count for point, count in counts.items() if count}


AGENTS = [
    Agent(  # the built-in echo: yields only
        "echo",
        {"text": "1 2 3"},
        register=lambda _: None,
        steps=[],
        yields=3,
        end=("RunFinished", None),
        occurrences=_points(take=1, step_ran=0, append=5, publish=3, complete=1),
    ),
    Agent(
        "researcher",
        {"q": "tides"},
        register=register_researcher,
        steps=["search", "fetch", "summarise"],
        yields=3,
        end=("RunFinished", None),
        occurrences=_points(take=1, step_ran=3, append=5, publish=3, complete=1),
    ),
    Agent(
        "clocked",
        {},
        register=register_clocked,
        steps=["token"],
        yields=3,
        end=("RunFinished", None),
        occurrences=_points(take=1, step_ran=1, append=5, publish=3, complete=1),
    ),
    Agent(
        "raiser",
        {},
        register=register_raiser,
        steps=["prepare", "check"],
        yields=2,
        end=("RunFailed", "ValueError"),
        occurrences=_points(take=1, step_ran=2, append=4, publish=3, complete=1),
    ),
    Agent(
        "no-resume",
        {},
        register=register_no_resume,
        steps=["charge", "ship"],
        yields=2,
        end=("RunFinished", None),
        occurrences=_points(take=1, step_ran=2, append=4, publish=3, complete=1),
        resume=False,
    ),
    Agent(  # two steps at once (asyncio.gather): "fast" ends, and is recorded, before "slow"
        "parallel",
        {},
        register=register_parallel,
        steps=["plan", "fast", "slow", "report"],  # in the order their results are recorded
        yields=2,
        end=("RunFinished", None),
        occurrences=_points(take=1, step_ran=4, append=4, publish=3, complete=1),
        in_flight={2: {"fast", "slow"}},  # slow's fn is running when fast's result is recorded
    ),
]


def _cases() -> list[Any]:
    cases = []
    for agent in AGENTS:
        for point, count in agent.occurrences.items():
            for nth in sorted({1, 2, count} & set(range(1, count + 1))):
                label = (
                    "last" if nth == count and count > 2 else f"{nth}{'st' if nth == 1 else 'nd'}"
                )
                cases.append(
                    pytest.param(agent, point, nth, id=f"{point.value}-{agent.name}-{label}")
                )
    return cases


async def streamed_seqs(run_id: str) -> list[int]:
    return [event.seq async for event in stream_run(run_id)]


def position(data: JsonObject) -> int:
    """Which yield of its agent a RunStep is (echo's words are numbers)."""
    return int(data["i"]) if "i" in data else int(data["text"])


@pytest.mark.deterministic
@pytest.mark.parametrize(("agent", "point", "nth"), _cases())
async def test_a_worker_crashing_anywhere_leaves_a_run_that_ends_once_and_whole(
    infra: Infra, agent: Agent, point: Crash, nth: int
) -> None:
    calls: Calls = Counter()
    agent.register(calls)
    run_id = await start_run(agent.name, agent.input)
    stream = asyncio.create_task(streamed_seqs(run_id))  # a client watching from the start
    with crash_at(point, nth) as crash:
        await run_until_idle()
    at_crash = await infra.store.get_run(run_id)
    await crash.take_over()
    streamed = await asyncio.wait_for(stream, DEADLINE)

    events = await infra.store.read_events(run_id)
    seqs = [event.seq for event in events]
    assert seqs == list(range(1, len(events) + 1)), "gap-free in the store"
    assert streamed == seqs, "and in the stream, each seq once, to the end"
    assert [event.is_terminal for event in events].count(True) == 1
    running_at_crash = at_crash.status is RunStatus.RUNNING
    if running_at_crash and not agent.resume:
        assert (events[-1].type, events[-1].data["error_type"]) == ("RunFailed", "WorkerLost")
    else:
        assert (events[-1].type, events[-1].data.get("error_type")) == agent.end
    steps = [position(event.data) for event in events if event.type == "RunStep"]
    assert steps == list(range(1, len(steps) + 1)), "no RunStep twice, none skipped"
    if agent.resume or not running_at_crash:
        assert len(steps) == agent.yields
    resumed = [event.data for event in events if event.type == "RunResumed"]
    taken_over_running = running_at_crash and agent.resume
    assert resumed == (
        [{"attempt": 2, "resumed_after_seq": at_crash.last_seq}] if taken_over_running else []
    )

    journal = await infra.store.read_steps(run_id)
    assert [record.index for record in journal] == list(range(1, len(journal) + 1))
    recorded = [record.name for record in journal if record.kind is StepKind.STEP]
    assert len(recorded) == len(set(recorded)), "no ctx.step recorded twice"
    expected_calls = Counter(recorded)  # each recorded step executed once...
    if point is Crash.AFTER_STEP_RAN:
        expected_calls.update(agent.in_flight_at(nth))  # ...but those in flight at the crash
    assert calls == expected_calls

    run = await infra.store.get_run(run_id)
    assert run.attempt == (at_crash.attempt if at_crash.status.is_terminal else 2)
    assert (await infra.queue.counts()).total == 0
    assert await infra.store.count_pending_outbox() == 0


@pytest.mark.deterministic
@pytest.mark.parametrize("agent", AGENTS, ids=[agent.name for agent in AGENTS])
async def test_each_agent_passes_each_point_as_often_as_listed(infra: Infra, agent: Agent) -> None:
    calls: Calls = Counter()
    agent.register(calls)
    await start_run(agent.name, agent.input)
    with count_crash_points() as occurrences:
        await run_until_idle()
    assert dict(occurrences) == agent.occurrences
    assert calls == Counter(agent.steps)
