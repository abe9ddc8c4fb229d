"""Every RunStorePort adapter keeps ``cancel_run``'s promise in its append: once a run's
cancellation is requested, whatever terminal event is appended to it is ``RunCancelled``."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from agents_run import RunStatus
from agents_run.ports import RunStorePort
from tests.contract.test_store_contract import AT, new_run, started_run


@pytest.mark.parametrize(
    ("type", "data"), [("RunFinished", {}), ("RunFailed", {"error_type": "E", "message": "m"})]
)
async def test_an_end_appended_after_a_cancel_request_is_run_cancelled(
    store: RunStorePort, type: str, data: dict[str, str]
) -> None:
    run = await started_run(store)
    await store.append_event(run.id, "RunStep", {"n": 1}, at=AT)
    assert await store.request_cancel(run.id, at=AT) is True
    step = await store.append_event(run.id, "RunStep", {"n": 2}, at=AT)  # steps are unchanged
    end = await store.append_event(run.id, type, data, at=AT)
    assert (step.type, end.type, end.data, end.seq) == ("RunStep", "RunCancelled", {}, 4)
    assert (await store.get_run(run.id)).status is RunStatus.CANCELLED
    assert [e.type for e in await store.read_events(run.id)][-1] == "RunCancelled"


async def test_a_queued_run_failing_after_a_cancel_request_ends_cancelled(
    store: RunStorePort,
) -> None:
    run = new_run()
    await store.create_run(run)
    assert await store.request_cancel(run.id, at=AT) is True
    end = await store.append_event(run.id, "RunFailed", {"error_type": "EnqueueFailed"}, at=AT)
    assert end.type == "RunCancelled"


async def test_a_cancel_through_another_handle_turns_the_holders_next_end_into_run_cancelled(
    store_pair: tuple[RunStorePort, RunStorePort],
) -> None:
    worker, api = store_pair
    run = new_run()
    await worker.create_run(run)
    held = await worker.acquire_lease(run.id, at=AT, until=AT + timedelta(seconds=30))
    assert held is not None
    # Appends through one handle: PostgreSQL's takes its one-round-trip path, from what it knows.
    await worker.append_event(run.id, "RunStarted", {}, at=AT, attempt=held.attempt)
    await worker.append_event(run.id, "RunStep", {}, at=AT, attempt=held.attempt)
    assert await api.request_cancel(run.id, at=AT) is True
    end = await worker.append_event(run.id, "RunFinished", {}, at=AT, attempt=held.attempt)
    assert end.type == "RunCancelled"
    assert (await api.get_run(run.id)).status is RunStatus.CANCELLED


async def test_a_cancel_racing_an_end_is_true_exactly_when_the_run_ends_cancelled(
    store_pair: tuple[RunStorePort, RunStorePort],
) -> None:
    worker, api = store_pair
    runs = [new_run() for _ in range(20)]
    for run in runs:
        await worker.create_run(run)
        await worker.append_event(run.id, "RunStarted", {}, at=AT)
        await worker.append_event(run.id, "RunStep", {}, at=AT)

    async def race(run_id: str) -> tuple[bool, str]:
        cancelled, end = await asyncio.gather(
            api.request_cancel(run_id, at=AT), worker.append_event(run_id, "RunFinished", {}, at=AT)
        )
        return cancelled, end.type

    async with asyncio.timeout(60):
        outcomes = await asyncio.gather(*(race(run.id) for run in runs))
    for cancelled, end_type in outcomes:
        assert end_type == ("RunCancelled" if cancelled else "RunFinished")
