from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from agents_run import (
    DrainDidNotSettle,
    Infra,
    InvalidArgument,
    register_agent,
    run_until_idle,
    start_run,
)
from agents_run.application.agents import unregister_agent
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

    try:
        await start_run("spawns-forever", {})
        with pytest.raises(DrainDidNotSettle, match="max_steps=5 with work left: 1 job"):
            await run_until_idle(max_steps=5)
    finally:
        unregister_agent("spawns-forever")


@pytest.mark.parametrize("max_steps", [0, -1, True, 2.5])
async def test_max_steps_must_be_a_positive_int(infra: Infra, max_steps: object) -> None:
    with pytest.raises(InvalidArgument, match="max_steps"):
        await run_until_idle(max_steps)  # type: ignore[arg-type]
