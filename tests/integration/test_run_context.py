"""An agent declared ``async def agent(input, ctx)`` gets its run's context: who it is, recorded
steps, the infra's time (skipped in tests), and randomness that repeats."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import pytest

from agents_run import (
    Infra,
    InfraUnavailable,
    InMemoryEventBus,
    InMemoryQueue,
    InMemoryRunStore,
    ManualClock,
    RetryPolicy,
    RunContext,
    SequentialIds,
    run_until_idle,
    run_worker_once,
    start_run,
    use_infra,
)
from agents_run.domain.journal import StepKind, StepRecord
from agents_run.domain.json_data import JsonObject

pytestmark = pytest.mark.deterministic

Register = Callable[..., Callable[[Any], Any]]


async def run_to_the_end(infra: Infra, agent: str, input: JsonObject | None = None) -> str:
    run_id = await start_run(agent, input or {})
    await run_until_idle()
    return run_id


async def test_the_context_names_the_run_the_agent_and_the_attempt(
    infra: Infra, register: Register
) -> None:
    @register("introduces-itself")
    async def agent(input: JsonObject, ctx: RunContext) -> AsyncIterator[JsonObject]:
        yield {"run_id": ctx.run_id, "agent": ctx.agent, "attempt": ctx.attempt}

    run_id = await run_to_the_end(infra, "introduces-itself")
    step = (await infra.store.read_events(run_id))[1]
    assert step.data == {"run_id": run_id, "agent": "introduces-itself", "attempt": 1}


async def test_a_step_is_called_once_recorded_in_the_journal_and_returned(
    infra: Infra, register: Register
) -> None:
    calls: list[str] = []

    def search(query: str, *, limit: int) -> list[str]:
        calls.append(query)
        return [f"{query}-{n}" for n in range(limit)]

    async def summarise(hits: list[str]) -> JsonObject:
        return {"summary": " ".join(hits)}

    @register("searches")
    async def agent(input: JsonObject, ctx: RunContext) -> AsyncIterator[JsonObject]:
        hits = await ctx.step("search", search, input["q"], limit=2)
        yield await ctx.step("summarise", summarise, hits)

    run_id = await run_to_the_end(infra, "searches", {"q": "otters"})
    events = await infra.store.read_events(run_id)
    assert [(e.type, e.data) for e in events] == [
        ("RunStarted", {"agent": "searches"}),
        ("RunStep", {"summary": "otters-0 otters-1"}),
        ("RunFinished", {}),
    ]
    assert calls == ["otters"]
    journal = await infra.store.read_steps(run_id)
    assert [(s.index, s.attempt, s.kind, s.name, s.result) for s in journal] == [
        (1, 1, StepKind.STEP, "search", ["otters-0", "otters-1"]),
        (2, 1, StepKind.STEP, "summarise", {"summary": "otters-0 otters-1"}),
    ]


async def test_sleeping_an_hour_moves_the_manual_clock_at_once(
    infra: Infra, register: Register
) -> None:
    @register("naps")
    async def agent(input: JsonObject, ctx: RunContext) -> AsyncIterator[JsonObject]:
        before = ctx.now()
        await ctx.sleep(3600)
        yield {"slept": (ctx.now() - before).total_seconds()}

    started = infra.clock.now()
    run_id = await run_to_the_end(infra, "naps")
    assert (await infra.store.read_events(run_id))[1].data == {"slept": 3600.0}
    assert infra.clock.now() - started == timedelta(hours=1)
    journal = await infra.store.read_steps(run_id)
    assert [(s.kind, s.result) for s in journal] == [
        (StepKind.NOW, started.isoformat()),
        (StepKind.SLEEP, {"seconds": 3600, "until": (started + timedelta(hours=1)).isoformat()}),
        (StepKind.NOW, (started + timedelta(hours=1)).isoformat()),
    ]


async def test_random_numbers_repeat_for_the_same_run_and_differ_between_runs(
    register: Register,
) -> None:
    @register("rolls-dice")
    async def agent(input: JsonObject, ctx: RunContext) -> AsyncIterator[JsonObject]:
        yield {"rolls": [ctx.random().randint(1, 6) for _ in range(8)]}

    async def rolls_of_two_runs() -> list[object]:
        with use_infra(Infra.in_memory()) as fresh:
            first = await run_to_the_end(fresh, "rolls-dice")
            second = await run_to_the_end(fresh, "rolls-dice")
            return [(await fresh.store.read_events(r))[1].data["rolls"] for r in (first, second)]

    once, again = await rolls_of_two_runs(), await rolls_of_two_runs()
    assert once == again  # the same run ids: the same numbers
    assert once[0] != once[1]


async def test_an_agent_may_catch_a_failed_step_and_go_on(infra: Infra, register: Register) -> None:
    def flaky_tool() -> str:
        raise ConnectionError("tool down")

    @register("falls-back")
    async def agent(input: JsonObject, ctx: RunContext) -> AsyncIterator[JsonObject]:
        try:
            answer = await ctx.step("tool", flaky_tool)
        except ConnectionError:
            answer = await ctx.step("fallback", lambda: "from the fallback")
        yield {"answer": answer}

    run_id = await run_to_the_end(infra, "falls-back")
    assert (await infra.store.read_events(run_id))[-2].data == {"answer": "from the fallback"}
    assert [s.name for s in await infra.store.read_steps(run_id)] == ["fallback"]


async def test_an_uncaught_step_failure_fails_the_run_naming_the_step(
    infra: Infra, register: Register, caplog: pytest.LogCaptureFixture
) -> None:
    def call_model() -> str:
        raise TimeoutError("the model took too long")

    @register("model-times-out")
    async def agent(input: JsonObject, ctx: RunContext) -> AsyncIterator[JsonObject]:
        yield {"text": await ctx.step("call model", call_model)}

    with caplog.at_level(logging.ERROR, logger="agents_run.worker"):
        run_id = await run_to_the_end(infra, "model-times-out")
    failed = (await infra.store.read_events(run_id))[-1]
    assert failed.type == "RunFailed"
    assert failed.data["error_type"] == "TimeoutError"
    assert failed.data["step"] == "call model"
    assert failed.data["message"] == "step 'call model' failed: the model took too long"
    assert await infra.store.read_steps(run_id) == []
    [record] = caplog.records  # once, at ERROR, with the run id and the traceback
    assert record.levelno == logging.ERROR
    assert run_id in record.getMessage()
    assert record.exc_info is not None


async def test_a_result_that_is_not_json_fails_the_run_naming_the_step(
    infra: Infra, register: Register
) -> None:
    @register("returns-a-set")
    async def agent(input: JsonObject, ctx: RunContext) -> AsyncIterator[JsonObject]:
        yield {"tags": await ctx.step("collect tags", lambda: {"a", "b"})}

    run_id = await run_to_the_end(infra, "returns-a-set")
    failed = (await infra.store.read_events(run_id))[-1]
    assert (failed.type, failed.data["error_type"], failed.data["step"]) == (
        "RunFailed",
        "StepResultNotJson",
        "collect tags",
    )
    assert "step 'collect tags' returned what JSON cannot hold" in failed.data["message"]
    assert "is a set" in failed.data["message"]
    assert await infra.store.read_steps(run_id) == []


async def test_a_retry_policy_retries_on_the_infra_clock_and_records_one_result(
    infra: Infra, register: Register, caplog: pytest.LogCaptureFixture
) -> None:
    attempts: list[str] = []

    def sometimes_down() -> str:
        attempts.append(infra.clock.now().isoformat())
        if len(attempts) < 3:
            raise ConnectionError("503")
        return "up"

    @register("retries")
    async def agent(input: JsonObject, ctx: RunContext) -> AsyncIterator[JsonObject]:
        policy = RetryPolicy(attempts=3, backoff=2.0, retry_on=(ConnectionError,))
        yield {"status": await ctx.step("fetch", sometimes_down, retry=policy)}

    start = infra.clock.now()
    with caplog.at_level(logging.WARNING, logger="agents_run.worker"):
        run_id = await run_to_the_end(infra, "retries")
    assert (await infra.store.read_events(run_id))[1].data == {"status": "up"}
    # Backoff 2 s, then 4 s, skipped on the manual clock.
    assert attempts == [(start + timedelta(seconds=s)).isoformat() for s in (0, 2, 6)]
    assert [s.result for s in await infra.store.read_steps(run_id)] == ["up"]
    assert [r.getMessage().split(";")[0] for r in caplog.records] == [
        f"run {run_id}: step 'fetch' failed (ConnectionError: 503), call 1 of 3",
        f"run {run_id}: step 'fetch' failed (ConnectionError: 503), call 2 of 3",
    ]


async def test_errors_outside_retry_on_are_not_retried(infra: Infra, register: Register) -> None:
    calls: list[int] = []

    def broken() -> None:
        calls.append(1)
        raise ValueError("bad request")

    @register("not-retried")
    async def agent(input: JsonObject, ctx: RunContext) -> AsyncIterator[JsonObject]:
        policy = RetryPolicy(attempts=5, retry_on=(ConnectionError,))
        yield {"never": await ctx.step("call", broken, retry=policy)}

    run_id = await run_to_the_end(infra, "not-retried")
    assert (await infra.store.read_events(run_id))[-1].data["error_type"] == "ValueError"
    assert calls == [1]


async def test_a_failure_says_where_it_was_raised_without_locals(
    infra: Infra, register: Register
) -> None:
    @register("raises-deep")
    async def agent(input: JsonObject, ctx: RunContext) -> AsyncIterator[JsonObject]:
        api_key = "sk-secret"  # a local: must not appear anywhere
        yield {"n": await ctx.step("parse", int, api_key)}

    run_id = await run_to_the_end(infra, "raises-deep")
    failed = (await infra.store.read_events(run_id))[-1]
    [frame] = failed.data["where"]
    assert frame.startswith("test_run_context.py:")
    assert frame.endswith(" in agent")
    assert "sk-secret" not in str(failed.data["where"])


@pytest.mark.parametrize(
    ("make_policy", "says"),
    [
        (lambda: RetryPolicy(attempts=0), "RetryPolicy.attempts must be an int >= 1"),
        (lambda: RetryPolicy(backoff=-1), "RetryPolicy.backoff must be seconds >= 0"),
        (lambda: RetryPolicy(multiplier=0.5), "RetryPolicy.multiplier must be >= 1"),
        (lambda: RetryPolicy(retry_on=ValueError), "RetryPolicy.retry_on must be a tuple"),  # type: ignore[arg-type]
    ],
)
def test_a_malformed_retry_policy_is_refused(make_policy: Callable[[], object], says: str) -> None:
    with pytest.raises(ValueError, match=says):
        make_policy()


class _JournalDown(InMemoryRunStore):
    async def record_step(self, record: StepRecord) -> None:
        raise InfraUnavailable("the store went away")


async def test_a_journal_that_cannot_be_written_is_the_workers_failure_not_the_agents(
    register: Register,
) -> None:
    @register("records-a-step")
    async def agent(input: JsonObject, ctx: RunContext) -> AsyncIterator[JsonObject]:
        yield {"n": await ctx.step("count", lambda: 1)}

    down = Infra(
        bus=InMemoryEventBus(),
        queue=InMemoryQueue(),
        store=_JournalDown(),
        ids=SequentialIds(),
        clock=ManualClock(),
    )
    with use_infra(down):
        run_id = await start_run("records-a-step", {})
        with pytest.raises(InfraUnavailable, match="the store went away"):
            await run_worker_once()
    failed = (await down.store.read_events(run_id))[-1]
    assert (failed.type, failed.data["error_type"]) == ("RunFailed", "WorkerError")
