"""Every RunStorePort adapter holds leases and fences appends and journal entries alike.

A worker takes a run with ``acquire_lease`` (the run's ``attempt`` is the fencing token), keeps
it with ``renew_lease``, and appends naming its attempt: once another worker took the run over,
the store refuses the old attempt's appends inside their own transaction.
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta

import pytest

from agents_run import RunNotFound, RunStatus
from agents_run.domain.journal import StepKind, StepRecord
from agents_run.errors import StaleAttempt
from agents_run.ports import RunStorePort
from tests.contract.test_store_contract import AT, new_run, started_run

LEASE = timedelta(seconds=5)


def later(seconds: float) -> timedelta:
    return timedelta(seconds=seconds)


async def test_taking_a_run_counts_the_attempt_and_holds_the_lease(store: RunStorePort) -> None:
    run = new_run()
    await store.create_run(run)
    assert (await store.get_run(run.id)).attempt == 0
    taken = await store.acquire_lease(run.id, at=AT, until=AT + LEASE)
    assert taken is not None
    assert (taken.attempt, taken.lease_until, taken.status) == (1, AT + LEASE, RunStatus.QUEUED)
    stored = await store.get_run(run.id)
    assert (stored.attempt, stored.lease_until) == (1, AT + LEASE)
    assert stored.updated_at == AT


async def test_a_live_lease_cannot_be_taken_and_a_lapsed_one_can(store: RunStorePort) -> None:
    run = await started_run(store)
    assert await store.acquire_lease(run.id, at=AT, until=AT + LEASE) is not None
    assert await store.acquire_lease(run.id, at=AT + later(4.9), until=AT + later(10)) is None
    assert (await store.get_run(run.id)).attempt == 1
    # The lease lasts until its end, not a moment more.
    again = await store.acquire_lease(run.id, at=AT + LEASE, until=AT + later(10))
    assert again is not None
    assert (again.attempt, again.lease_until) == (2, AT + later(10))


async def test_ended_runs_cannot_be_taken_or_renewed(store: RunStorePort) -> None:
    run = await started_run(store)
    taken = await store.acquire_lease(run.id, at=AT, until=AT + LEASE)
    assert taken is not None
    await store.append_event(run.id, "RunFinished", {}, at=AT, attempt=taken.attempt)
    assert await store.acquire_lease(run.id, at=AT + later(60), until=AT + later(65)) is None
    assert await store.renew_lease(run.id, taken.attempt, until=AT + later(65)) is False


async def test_unknown_runs_raise_run_not_found_for_leases(store: RunStorePort) -> None:
    with pytest.raises(RunNotFound):
        await store.acquire_lease("no-such-run", at=AT, until=AT + LEASE)
    with pytest.raises(RunNotFound):
        await store.renew_lease("no-such-run", 1, until=AT + LEASE)


async def test_only_the_current_attempt_renews_its_lease(store: RunStorePort) -> None:
    run = await started_run(store)
    await store.acquire_lease(run.id, at=AT, until=AT + LEASE)
    assert await store.renew_lease(run.id, 1, until=AT + later(8)) is True
    stored = await store.get_run(run.id)
    assert stored.lease_until == AT + later(8)
    assert stored.updated_at == AT, "a renewal is not a change of the run"
    await store.acquire_lease(run.id, at=AT + later(8), until=AT + later(13))
    assert await store.renew_lease(run.id, 1, until=AT + later(20)) is False
    assert (await store.get_run(run.id)).lease_until == AT + later(13)


async def test_an_append_from_a_stale_attempt_is_refused_and_changes_nothing(
    store: RunStorePort,
) -> None:
    run = await started_run(store)
    await store.acquire_lease(run.id, at=AT, until=AT + LEASE)
    await store.append_event(run.id, "RunStep", {"n": 1}, at=AT, attempt=1)
    await store.acquire_lease(run.id, at=AT + LEASE, until=AT + later(10))
    before = await store.get_run(run.id)
    pending = await store.count_pending_outbox(run.id)
    with pytest.raises(StaleAttempt, match="held by attempt 2, not 1"):
        await store.append_event(run.id, "RunStep", {"n": 2}, at=AT + LEASE, attempt=1)
    with pytest.raises(StaleAttempt):
        await store.append_event(run.id, "RunFinished", {}, at=AT + LEASE, attempt=1)
    assert await store.get_run(run.id) == before
    assert [e.data for e in await store.read_events(run.id)] == [{}, {"n": 1}]
    assert await store.count_pending_outbox(run.id) == pending
    event = await store.append_event(run.id, "RunStep", {"n": 2}, at=AT + LEASE, attempt=2)
    assert event.seq == 3


async def test_an_append_naming_no_attempt_is_not_fenced(store: RunStorePort) -> None:
    # cancel_run and the sweeper end runs without holding them.
    run = await started_run(store)
    await store.acquire_lease(run.id, at=AT, until=AT + LEASE)
    await store.append_event(run.id, "RunCancelled", {}, at=AT)
    assert (await store.get_run(run.id)).status is RunStatus.CANCELLED


async def test_lapsed_leases_are_the_running_runs_past_their_lease_longest_lapsed_first(
    store: RunStorePort,
) -> None:
    newer, older, tied, live = [await started_run(store) for _ in range(4)]
    await store.acquire_lease(newer.id, at=AT, until=AT + later(3))
    await store.acquire_lease(older.id, at=AT, until=AT + later(1))
    await store.acquire_lease(tied.id, at=AT, until=AT + later(3))
    await store.acquire_lease(live.id, at=AT, until=AT + later(30))
    queued = new_run()  # taken, but its worker has not started it: not a running run
    await store.create_run(queued)
    await store.acquire_lease(queued.id, at=AT, until=AT + later(1))
    ended = await started_run(store)
    await store.acquire_lease(ended.id, at=AT, until=AT + later(1))
    await store.append_event(ended.id, "RunFinished", {}, at=AT)
    await started_run(store)  # never leased (an older version's run): the sweeper's, not ours

    mine = {newer.id, older.id, tied.id, live.id, queued.id, ended.id}
    lapsed = [r.id for r in await store.list_lapsed_leases(at=AT + later(3)) if r.id in mine]
    assert lapsed == [older.id, *sorted([newer.id, tied.id])]
    assert [r.id for r in await store.list_lapsed_leases(at=AT + later(2)) if r.id in mine] == [
        older.id
    ]
    first = await store.list_lapsed_leases(at=AT + later(3), limit=1)
    assert len(first) == 1


async def test_of_two_workers_taking_a_run_at_once_exactly_one_gets_it(
    store_pair: tuple[RunStorePort, RunStorePort],
) -> None:
    first, second = store_pair
    runs = [await started_run(first) for _ in range(5)]
    for run in runs:
        taken = await asyncio.gather(
            first.acquire_lease(run.id, at=AT, until=AT + LEASE),
            second.acquire_lease(run.id, at=AT, until=AT + LEASE),
        )
        assert sorted(t is None for t in taken) == [False, True]
        assert (await first.get_run(run.id)).attempt == 1


async def test_a_worker_whose_run_was_taken_over_elsewhere_cannot_append(
    store_pair: tuple[RunStorePort, RunStorePort],
) -> None:
    paused_worker, other_worker = store_pair
    run = await started_run(paused_worker)
    await paused_worker.acquire_lease(run.id, at=AT, until=AT + LEASE)
    taken = await other_worker.acquire_lease(run.id, at=AT + later(6), until=AT + later(11))
    assert taken is not None
    assert taken.attempt == 2
    with pytest.raises(StaleAttempt):
        await paused_worker.append_event(run.id, "RunStep", {}, at=AT + later(6), attempt=1)
    assert await paused_worker.renew_lease(run.id, 1, until=AT + later(20)) is False
    await other_worker.append_event(run.id, "RunFinished", {}, at=AT + later(6), attempt=2)
    assert [e.type for e in await paused_worker.read_events(run.id)] == [
        "RunStarted",
        "RunFinished",
    ]


async def test_a_worker_that_appended_before_its_run_was_taken_over_cannot_append_again(
    store_pair: tuple[RunStorePort, RunStorePort],
) -> None:
    # The paused worker's handle has appended at its attempt (a store may remember the run's
    # state from that append): the take-over through the other handle must still fence it.
    paused_worker, other_worker = store_pair
    run = new_run()
    await paused_worker.create_run(run)
    await paused_worker.acquire_lease(run.id, at=AT, until=AT + LEASE)
    await paused_worker.append_event(run.id, "RunStarted", {}, at=AT, attempt=1)
    await paused_worker.append_event(run.id, "RunStep", {"n": 1}, at=AT, attempt=1)
    await other_worker.acquire_lease(run.id, at=AT + later(6), until=AT + later(11))
    await other_worker.append_event(run.id, "RunStep", {"n": 2}, at=AT + later(6), attempt=2)
    with pytest.raises(StaleAttempt):
        await paused_worker.append_event(run.id, "RunStep", {"n": 3}, at=AT + later(7), attempt=1)
    finished = await other_worker.append_event(run.id, "RunFinished", {}, at=AT, attempt=2)
    assert finished.seq == 4
    assert [e.data.get("n") for e in await paused_worker.read_events(run.id)] == [None, 1, 2, None]
    assert [r.event.seq for r in await paused_worker.pending_outbox(run.id)] == [1, 2, 3, 4]


async def test_a_worker_whose_run_was_taken_over_cannot_record_its_journal_either(
    store_pair: tuple[RunStorePort, RunStorePort],
) -> None:
    paused_worker, other_worker = store_pair
    run = await started_run(paused_worker)
    await paused_worker.acquire_lease(run.id, at=AT, until=AT + LEASE)
    await other_worker.acquire_lease(run.id, at=AT + later(6), until=AT + later(11))
    entry = StepRecord(run.id, 1, 1, StepKind.STEP, "search", {"hits": 1})
    with pytest.raises(StaleAttempt, match="taken over by attempt 2"):
        await paused_worker.record_step(entry)
    assert await other_worker.read_steps(run.id) == []
    await other_worker.record_step(dataclasses.replace(entry, attempt=2))
    assert [step.attempt for step in await paused_worker.read_steps(run.id)] == [2]
