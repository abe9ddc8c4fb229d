"""Each step of an agent runs as a task of its own, begun at once (most steps never suspend and
cost no turn of the loop): what binds to the current task in a step binds to the step's task,
never to the worker's."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from agents_run import Infra, run_until_idle, start_run
from agents_run.domain.json_data import JsonObject

pytestmark = pytest.mark.deterministic_in_memory

Register = Callable[..., Callable[[Any], Any]]


async def test_a_task_group_in_a_step_binds_to_the_step_not_to_the_worker(
    infra: Infra, register: Register
) -> None:
    async def fails_later() -> None:
        await asyncio.sleep(0)
        raise ValueError("one tool call failed")

    @register("grouped")
    async def grouped(input: JsonObject) -> AsyncIterator[JsonObject]:
        yield {"before": True}  # ends at once: no suspension before the group
        async with asyncio.TaskGroup() as group:
            group.create_task(fails_later())
            group.create_task(asyncio.Event().wait())  # cancelled by the group
        yield {"never": True}

    run_id = await start_run("grouped", {})
    await run_until_idle()
    events = await infra.store.read_events(run_id)
    assert [e.type for e in events] == ["RunStarted", "RunStep", "RunFailed"]
    assert events[-1].data["error_type"] == "ExceptionGroup"


async def test_a_timeout_in_a_step_interrupts_that_step_only(
    infra: Infra, register: Register
) -> None:
    @register("timed")
    async def timed(input: JsonObject) -> AsyncIterator[JsonObject]:
        outer = asyncio.current_task()
        try:
            async with asyncio.timeout(0.01):
                await asyncio.Event().wait()
        except TimeoutError:
            yield {"timed_out": True, "same_task": asyncio.current_task() is outer}

    run_id = await start_run("timed", {})
    await run_until_idle()
    events = await infra.store.read_events(run_id)
    assert [(e.type, e.data) for e in events] == [
        ("RunStarted", {"agent": "timed"}),
        ("RunStep", {"timed_out": True, "same_task": True}),
        ("RunFinished", {}),
    ]


async def test_a_step_runs_in_a_task_of_its_own(infra: Infra, register: Register) -> None:
    worker_task = asyncio.current_task()
    seen: list[bool] = []

    @register("where")
    async def where(input: JsonObject) -> AsyncIterator[JsonObject]:
        seen.append(asyncio.current_task() is not worker_task)
        yield {"step": 1}
        await asyncio.sleep(0)
        seen.append(asyncio.current_task() is not worker_task)
        yield {"step": 2}

    await start_run("where", {})
    await run_until_idle()
    assert seen == [True, True]
