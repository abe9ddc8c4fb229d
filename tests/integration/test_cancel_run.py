from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from agents_run import (
    Infra,
    RunContext,
    RunNotFound,
    RunStatus,
    cancel_run,
    run_until_idle,
    start_run,
    wait_for_run,
)
from agents_run.domain.json_data import JsonObject

pytestmark = pytest.mark.deterministic


async def test_a_queued_run_is_cancelled_at_once_and_idempotently(infra: Infra) -> None:
    run_id = await start_run("echo", {"text": "a b"})
    assert await cancel_run(run_id) is True
    assert await cancel_run(run_id) is False
    events = await infra.store.read_events(run_id)
    assert [(e.seq, e.type) for e in events] == [(1, "RunCancelled")]
    await run_until_idle()
    assert [e.type for e in await infra.store.read_events(run_id)] == ["RunCancelled"]


async def test_cancelling_a_finished_run_is_a_no_op(infra: Infra) -> None:
    run_id = await start_run("echo", {"text": "a"})
    await run_until_idle()
    assert await cancel_run(run_id) is False
    assert [e.type for e in await infra.store.read_events(run_id)][-1] == "RunFinished"


async def test_cancelling_an_unknown_run_raises(infra: Infra) -> None:
    with pytest.raises(RunNotFound, match="run 'run-999' not found"):
        await cancel_run("run-999")


@pytest.mark.parametrize("ending", ["returns", "raises"])
async def test_true_means_run_cancelled_even_where_the_agent_ends_before_the_interruption(
    infra: Infra, register: Callable[..., Callable[[Any], Any]], ending: str
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
    await run_until_idle()
    terminal = await wait_for_run(run_id, timeout=30)
    assert answers == [True]
    assert (terminal.type, terminal.data) == ("RunCancelled", {})
    assert (await infra.store.get_run(run_id)).status is RunStatus.CANCELLED
