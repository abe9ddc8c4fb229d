"""What an agent read with ``ctx.now()`` is in the run's journal before the next event is
appended, whichever event that is: a step, or the end of the run however it ends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from agents_run import Infra, RunContext, cancel_run, run_worker_once, start_run
from agents_run.domain.json_data import JsonObject
from tests.leaks import leaves_work_on_purpose

pytestmark = leaves_work_on_purpose  # the worker only appends
DEADLINE = 10.0
Register = Callable[..., Callable[[Any], Any]]


def writes_of(infra: Infra, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The store's journal writes and appends, in the order they are made (refused ones left
    out)."""
    writes: list[str] = []
    record_step, append_event = infra.store.record_step, infra.store.append_event

    async def journal(record: Any, *args: Any, **kwargs: Any) -> None:
        await record_step(record, *args, **kwargs)
        writes.append(f"journal {record.kind.value}")

    async def append(run_id: str, type: str, *args: Any, **kwargs: Any) -> Any:
        appended = await append_event(run_id, type, *args, **kwargs)
        writes.append(type)
        return appended

    monkeypatch.setattr(infra.store, "record_step", journal)
    monkeypatch.setattr(infra.store, "append_event", append)
    return writes


# One test per kind, several runs each: a run is cheap, a test's namespace on the servers is not.
@pytest.mark.deterministic
async def test_the_time_an_agent_read_is_journaled_before_its_next_event(
    infra: Infra, register: Register, monkeypatch: pytest.MonkeyPatch
) -> None:
    @register("reads-the-time")
    async def agent(input: JsonObject, ctx: RunContext) -> AsyncIterator[JsonObject]:
        ctx.now()
        if input["ending"] == "raises":
            raise ValueError("after reading the time")
        if input["ending"] == "yields":
            yield {}
            ctx.now()

    writes = writes_of(infra, monkeypatch)
    for ending, then in [
        ("yields", ["RunStep", "journal now", "RunFinished"]),
        ("returns", ["RunFinished"]),
        ("raises", ["RunFailed"]),
    ]:
        writes.clear()
        await start_run("reads-the-time", {"ending": ending})
        assert await run_worker_once() is True
        assert writes == ["RunStarted", "journal now", *then], ending


# On real servers the worker's writes race with cancel_run's own (refused) append.
@pytest.mark.deterministic_in_memory
async def test_the_time_read_in_a_step_that_is_interrupted_is_journaled_before_the_end(
    infra: Infra, register: Register, monkeypatch: pytest.MonkeyPatch
) -> None:
    reading = asyncio.Event()

    @register("reads-the-time-then-waits")
    async def agent(input: JsonObject, ctx: RunContext) -> AsyncIterator[JsonObject]:
        ctx.now()
        reading.set()
        await asyncio.Event().wait()  # until the cancel or the stop interrupts it
        yield {}

    writes = writes_of(infra, monkeypatch)
    for interrupted_by, end in [("cancel", "RunCancelled"), ("stop", "RunFailed")]:
        writes.clear()
        reading.clear()
        run_id = await start_run("reads-the-time-then-waits", {})
        stop = asyncio.Event()
        worker = asyncio.create_task(run_worker_once(stop=stop))
        await asyncio.wait_for(reading.wait(), DEADLINE)
        if interrupted_by == "cancel":
            assert await cancel_run(run_id) is True
        else:
            stop.set()  # the worker shuts down: the run ends WorkerShutdown
        assert await asyncio.wait_for(worker, DEADLINE) is True
        assert writes == ["RunStarted", "journal now", end], interrupted_by
        assert [record.kind.value for record in await infra.store.read_steps(run_id)] == ["now"]
