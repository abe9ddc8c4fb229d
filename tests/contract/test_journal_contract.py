"""Every RunStorePort adapter keeps a run's journal (what ``ctx.step``, ``ctx.now`` and
``ctx.sleep`` recorded) alike, and pushes cancel requests to waiting workers alike."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from agents_run import RunNotFound
from agents_run.domain.journal import StepKind, StepRecord
from agents_run.errors import InvalidArgument, InvalidTransition, StaleAttempt, StaleRunState
from agents_run.ports import RunStorePort
from tests.contract.test_store_contract import AT, new_run, started_run


def step(run_id: str, index: int, result: object = None, **changes: object) -> StepRecord:
    fields: dict[str, object] = {
        "run_id": run_id,
        "index": index,
        "attempt": 1,
        "kind": StepKind.STEP,
        "name": f"step {index}",
        "result": result,
    }
    fields.update(changes)
    return StepRecord(**fields)  # type: ignore[arg-type]


async def test_recorded_steps_read_back_in_index_order_with_their_json(
    store: RunStorePort,
) -> None:
    run = await started_run(store)
    records = [
        step(run.id, 1, {"hits": ["a", "b"], "score": 0.5, "none": None}),
        step(run.id, 2, "2026-01-01T00:00:00+00:00", kind=StepKind.NOW, name="now"),
        step(run.id, 3, [1, True, "x"], attempt=2),
        step(run.id, 4, 7),
    ]
    for record in records:
        await store.record_step(record)
    assert await store.read_steps(run.id) == records


async def test_the_journal_is_neither_events_nor_outbox(store: RunStorePort) -> None:
    run = await started_run(store)
    await store.record_step(step(run.id, 1, "result"))
    assert [e.type for e in await store.read_events(run.id)] == ["RunStarted"]
    assert [row.event.type for row in await store.pending_outbox(run.id)] == ["RunStarted"]


async def test_an_index_is_recorded_once(store: RunStorePort) -> None:
    run = await started_run(store)
    await store.record_step(step(run.id, 1, "first"))
    with pytest.raises(StaleRunState, match="already has journal entry 1"):
        await store.record_step(step(run.id, 1, "second"))
    assert [s.result for s in await store.read_steps(run.id)] == ["first"]


async def test_a_step_from_an_attempt_that_was_taken_over_is_refused(store: RunStorePort) -> None:
    # Its reply lost in an outage, the old worker's retry must not fill in the new one's journal.
    run = new_run()
    await store.create_run(run)
    assert await store.acquire_lease(run.id, at=AT, until=AT + timedelta(seconds=1))
    await store.append_event(run.id, "RunStarted", {}, at=AT, attempt=1)
    later = AT + timedelta(seconds=2)
    taken = await store.acquire_lease(run.id, at=later, until=later + timedelta(seconds=1))
    assert taken is not None
    assert taken.attempt == 2
    with pytest.raises(StaleAttempt, match="taken over by attempt 2"):
        await store.record_step(step(run.id, 1, "late", attempt=1))
    await store.record_step(step(run.id, 1, "current", attempt=2))
    assert [s.result for s in await store.read_steps(run.id)] == ["current"]


async def test_steps_are_recorded_only_while_the_run_runs(store: RunStorePort) -> None:
    queued = new_run()
    await store.create_run(queued)
    with pytest.raises(InvalidTransition, match="is queued"):
        await store.record_step(step(queued.id, 1))
    ended = await started_run(store)
    await store.append_event(ended.id, "RunFinished", {}, at=AT)
    with pytest.raises(InvalidTransition, match="is finished"):
        await store.record_step(step(ended.id, 1))
    assert await store.read_steps(ended.id) == []


async def test_a_result_that_is_not_json_is_refused(store: RunStorePort) -> None:
    run = await started_run(store)
    with pytest.raises(InvalidArgument, match="the result of step 'step 1'"):
        await store.record_step(step(run.id, 1, {"when": float("nan")}))
    assert await store.read_steps(run.id) == []


async def test_the_journal_of_an_unknown_run_raises(store: RunStorePort) -> None:
    with pytest.raises(RunNotFound):
        await store.read_steps("no-such-run")
    with pytest.raises(RunNotFound):
        await store.record_step(step("no-such-run", 1))
    with pytest.raises(RunNotFound):
        await store.wait_for_cancel("no-such-run", 0.01)


async def test_wait_for_cancel_is_true_at_once_where_requested_and_false_after_timeout(
    store: RunStorePort,
) -> None:
    run = await started_run(store)
    assert await store.wait_for_cancel(run.id, 0.05) is False
    await store.request_cancel(run.id, at=AT)
    assert await store.wait_for_cancel(run.id, 0) is True


async def test_a_waiting_worker_sees_a_cancel_requested_through_another_handle(
    store_pair: tuple[RunStorePort, RunStorePort],
) -> None:
    worker_side, client_side = store_pair
    run = await started_run(worker_side)
    waiting = asyncio.create_task(worker_side.wait_for_cancel(run.id, 30))
    await asyncio.sleep(0.05)  # let it start listening; missing the push would still pass late
    assert await client_side.request_cancel(run.id, at=AT) is True
    assert await asyncio.wait_for(waiting, 5) is True


async def test_steps_recorded_through_one_handle_are_read_through_the_other(
    store_pair: tuple[RunStorePort, RunStorePort],
) -> None:
    writer, reader = store_pair
    run = await started_run(writer)
    await writer.record_step(step(run.id, 1, {"a": 1}))
    assert await reader.read_steps(run.id) == [step(run.id, 1, {"a": 1})]
