from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from agents_run import (
    Infra,
    RunEvent,
    RunStatus,
    cancel_run,
    register_agent,
    run_worker_once,
    start_run,
)
from agents_run.adapters.memory import InMemoryQueue
from agents_run.application.agents import unregister_agent
from agents_run.domain.events import Run
from agents_run.domain.json_data import JsonObject
from tests.leaks import leaves_work_on_purpose

pytestmark = [
    pytest.mark.deterministic,
    leaves_work_on_purpose,  # the worker only appends: these tests stop before publishing
]


@pytest.fixture
def failing_agent() -> str:
    @register_agent("fails-after-one-step")
    async def agent(input: JsonObject) -> AsyncIterator[JsonObject]:
        yield {"step": 1}
        raise RuntimeError("model unavailable")

    return "fails-after-one-step"


async def types_of(infra: Infra, run_id: str) -> list[str]:
    return [event.type for event in await infra.store.read_events(run_id)]


async def test_no_job_means_false(infra: Infra) -> None:
    assert await run_worker_once() is False


async def test_the_worker_runs_echo_to_the_end_and_only_appends(infra: Infra) -> None:
    run_id = await start_run("echo", {"text": "a b c"})
    assert await run_worker_once() is True
    events = await infra.store.read_events(run_id)
    assert [(e.seq, e.type, e.data) for e in events] == [
        (1, "RunStarted", {"agent": "echo"}),
        (2, "RunStep", {"text": "a"}),
        (3, "RunStep", {"text": "b"}),
        (4, "RunStep", {"text": "c"}),
        (5, "RunFinished", {}),
    ]
    assert (await infra.store.get_run(run_id)).status is RunStatus.FINISHED
    assert (await infra.queue.counts()).total == 0
    assert len(await infra.store.pending_outbox(run_id)) == 5  # publishing is not its job


async def test_an_agent_that_raises_ends_its_run_failed(infra: Infra, failing_agent: str) -> None:
    run_id = await start_run(failing_agent, {})
    assert await run_worker_once() is True
    events = await infra.store.read_events(run_id)
    assert [e.type for e in events] == ["RunStarted", "RunStep", "RunFailed"]
    assert events[-1].data == {
        "error_type": "RuntimeError",
        "message": "model unavailable",
        "where": ["test_run_worker.py:35 in agent"],
    }


async def test_an_agent_that_yields_non_json_fails_its_run(infra: Infra) -> None:
    @register_agent("yields-a-set")
    async def agent(input: JsonObject) -> AsyncIterator[JsonObject]:
        yield {"ids": {1, 2}}

    run_id = await start_run("yields-a-set", {})
    await run_worker_once()
    last = (await infra.store.read_events(run_id))[-1]
    assert last.type == "RunFailed"
    assert last.data["error_type"] == "InvalidArgument"
    assert "is a set" in last.data["message"]


async def test_an_agent_missing_in_the_worker_fails_the_run(infra: Infra) -> None:
    register_agent("only-in-the-api-process", _no_steps)
    run_id = await start_run("only-in-the-api-process", {})
    unregister_agent("only-in-the-api-process")  # the worker process never imported it
    await run_worker_once()
    last = (await infra.store.read_events(run_id))[-1]
    assert (last.type, last.data["error_type"]) == ("RunFailed", "UnknownAgent")


async def _no_steps(input: JsonObject) -> AsyncIterator[JsonObject]:
    steps: list[JsonObject] = []
    for step in steps:
        yield step


@pytest.mark.agents_run_memory_only(reason="InMemoryQueue.requeue_active plays the dead worker")
async def test_a_job_retaken_after_its_worker_was_lost_fails_the_run_once(infra: Infra) -> None:
    run_id = await start_run("echo", {"text": "a"})
    job = await infra.queue.take_next()
    assert job is not None
    await infra.store.append_event(run_id, "RunStarted", {}, at=infra.clock.now())
    assert isinstance(infra.queue, InMemoryQueue)
    infra.queue.requeue_active()  # what a stalled-job checker does for a dead worker

    assert await run_worker_once() is True
    events = await infra.store.read_events(run_id)
    assert [e.type for e in events] == ["RunStarted", "RunFailed"]
    assert events[-1].data["error_type"] == "WorkerLost"
    assert await run_worker_once() is False


async def test_a_cancelled_queued_run_is_never_executed(infra: Infra) -> None:
    run_id = await start_run("echo", {"text": "a b"})
    assert await cancel_run(run_id) is True
    assert await run_worker_once() is True  # takes the job, runs nothing
    assert await types_of(infra, run_id) == ["RunCancelled"]


async def test_a_stopping_worker_ends_its_run_at_the_next_step(infra: Infra) -> None:
    stop = asyncio.Event()

    @register_agent("outlives-the-worker")
    async def agent(input: JsonObject) -> AsyncIterator[JsonObject]:
        yield {"step": 1}
        stop.set()  # SIGTERM arrives while step 2 is being computed
        yield {"step": 2}
        yield {"step": 3}  # never reached

    run_id = await start_run("outlives-the-worker", {})
    assert await run_worker_once(stop=stop) is True
    events = await infra.store.read_events(run_id)
    assert [e.type for e in events] == ["RunStarted", "RunStep", "RunStep", "RunFailed"]
    assert events[-1].data == {
        "error_type": "WorkerShutdown",
        "message": "the worker was stopped after seq 3; start a new run to retry",
    }
    assert (await infra.queue.counts()).total == 0


async def test_a_store_error_mid_run_ends_the_run_as_a_worker_error_and_raises(
    infra: Infra, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = await start_run("echo", {"text": "a b"})
    real_append = infra.store.append_event
    appends = 0

    async def append_failing_once(*args: Any, **kwargs: Any) -> RunEvent:
        nonlocal appends
        appends += 1
        if appends == 2:  # the first RunStep
            raise ConnectionError("store connection lost")
        return await real_append(*args, **kwargs)

    monkeypatch.setattr(infra.store, "append_event", append_failing_once)
    with pytest.raises(ConnectionError, match="store connection lost"):
        await run_worker_once()
    events = await infra.store.read_events(run_id)
    assert [e.type for e in events] == ["RunStarted", "RunFailed"]
    assert events[-1].data == {
        "error_type": "WorkerError",
        "message": "the worker failed: ConnectionError: store connection lost",
    }
    counts = await infra.queue.counts()
    assert (counts.waiting, counts.active) == (1, 0)  # failed, waiting for its retry


async def test_a_cancelled_worker_fails_its_job_so_that_a_retry_ends_the_run(infra: Infra) -> None:
    started = asyncio.Event()

    @register_agent("never-ends")
    async def agent(input: JsonObject) -> AsyncIterator[JsonObject]:
        started.set()
        await asyncio.Event().wait()
        yield {}

    run_id = await start_run("never-ends", {})
    worker = asyncio.create_task(run_worker_once())
    await asyncio.wait_for(started.wait(), 2)
    worker.cancel()
    with pytest.raises(asyncio.CancelledError):
        await worker
    counts = await infra.queue.counts()
    assert (counts.waiting, counts.active) == (1, 0)  # failed, to be retried
    assert (await infra.store.get_run(run_id)).status == "running"  # until the retry ends it


async def test_a_cancel_landing_between_the_workers_read_and_write_is_not_an_error(
    infra: Infra, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = await start_run("echo", {"text": "a"})
    await infra.store.request_cancel(run_id, at=infra.clock.now())  # cancel_run, first half
    real_get_run = infra.store.get_run

    async def read_then_let_cancel_run_finish(wanted: str) -> Run:
        run = await real_get_run(wanted)
        await infra.store.append_event(  # cancel_run, second half, while the worker decides
            wanted, "RunCancelled", {}, at=infra.clock.now(), expected_status=RunStatus.QUEUED
        )
        monkeypatch.setattr(infra.store, "get_run", real_get_run)
        return run

    monkeypatch.setattr(infra.store, "get_run", read_then_let_cancel_run_finish)
    assert await run_worker_once() is True
    assert await types_of(infra, run_id) == ["RunCancelled"]
    assert (await infra.queue.counts()).total == 0
