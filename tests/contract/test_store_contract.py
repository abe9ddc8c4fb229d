"""Every RunStorePort adapter behaves alike."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime, timedelta, timezone

import pytest

from agents_run import InMemoryRunStore, RunNotFound, RunStatus
from agents_run.domain.events import Run
from agents_run.errors import InvalidArgument, InvalidTransition, StaleRunState
from agents_run.ports import RunStorePort

AT = datetime(2026, 1, 1, tzinfo=UTC)
_ids = itertools.count(1)


def new_run(**changes: object) -> Run:
    # Unique ids let networked stores share one database between tests.
    fields: dict[str, object] = {
        "id": f"contract-run-{next(_ids)}",
        "agent": "echo",
        "input": {"text": "a b"},
        "status": RunStatus.QUEUED,
        "created_at": AT,
        "updated_at": AT,
    }
    fields.update(changes)
    return Run(**fields)  # type: ignore[arg-type]


async def started_run(store: RunStorePort) -> Run:
    run = new_run()
    await store.create_run(run)
    await store.append_event(run.id, "RunStarted", {}, at=AT)
    return run


async def test_a_created_run_reads_back_queued(store: RunStorePort) -> None:
    run = new_run(input={"text": "hello", "nested": {"n": [1, 2.5, None, True]}})
    await store.create_run(run)
    stored = await store.get_run(run.id)
    assert stored.id == run.id
    assert stored.agent == "echo"
    assert stored.input == {"text": "hello", "nested": {"n": [1, 2.5, None, True]}}
    assert stored.status is RunStatus.QUEUED
    assert stored.last_seq == 0
    assert stored.cancel_requested is False


async def test_creating_the_same_run_twice_is_refused(store: RunStorePort) -> None:
    run = new_run()
    await store.create_run(run)
    with pytest.raises(InvalidArgument, match="already exists"):
        await store.create_run(run)


async def test_unknown_runs_raise_run_not_found(store: RunStorePort) -> None:
    with pytest.raises(RunNotFound):
        await store.get_run("no-such-run")
    with pytest.raises(RunNotFound):
        await store.read_events("no-such-run")
    with pytest.raises(RunNotFound):
        await store.append_event("no-such-run", "RunStarted", {}, at=AT)
    with pytest.raises(RunNotFound):
        await store.request_cancel("no-such-run", at=AT)


async def test_appends_get_gap_free_seqs_and_move_the_status(store: RunStorePort) -> None:
    run = await started_run(store)
    step = await store.append_event(run.id, "RunStep", {"text": "a"}, at=AT)
    end = await store.append_event(run.id, "RunFinished", {}, at=AT)
    assert (step.seq, end.seq) == (2, 3)
    assert step.data == {"text": "a"}
    stored = await store.get_run(run.id)
    assert stored.status is RunStatus.FINISHED
    assert stored.last_seq == 3
    events = await store.read_events(run.id)
    assert [(e.seq, e.type) for e in events] == [
        (1, "RunStarted"),
        (2, "RunStep"),
        (3, "RunFinished"),
    ]


async def test_nothing_is_appended_after_the_terminal_event(store: RunStorePort) -> None:
    run = await started_run(store)
    await store.append_event(run.id, "RunFailed", {"error_type": "X", "message": "m"}, at=AT)
    with pytest.raises(InvalidTransition):
        await store.append_event(run.id, "RunStep", {}, at=AT)
    with pytest.raises(InvalidTransition):
        await store.append_event(run.id, "RunFinished", {}, at=AT)
    assert (await store.get_run(run.id)).last_seq == 2
    assert len(await store.pending_outbox(run.id)) == 2


async def test_expected_status_guards_the_append(store: RunStorePort) -> None:
    run = await started_run(store)
    with pytest.raises(StaleRunState, match="running, not queued"):
        await store.append_event(
            run.id, "RunCancelled", {}, at=AT, expected_status=RunStatus.QUEUED
        )
    assert (await store.get_run(run.id)).status is RunStatus.RUNNING


async def test_read_events_from_a_seq_with_a_limit(store: RunStorePort) -> None:
    run = await started_run(store)
    for word in "abcd":
        await store.append_event(run.id, "RunStep", {"text": word}, at=AT)
    assert [e.seq for e in await store.read_events(run.id, 3)] == [3, 4, 5]
    assert [e.seq for e in await store.read_events(run.id, 2, limit=2)] == [2, 3]
    assert await store.read_events(run.id, 99) == []


async def test_stored_data_is_a_copy(store: RunStorePort) -> None:
    run_input = {"text": "a", "list": [1]}
    run = new_run(input=run_input)
    await store.create_run(run)
    await store.append_event(run.id, "RunStarted", {}, at=AT)
    data = {"text": "step", "list": [1]}
    await store.append_event(run.id, "RunStep", data, at=AT)
    run_input["list"].append(2)  # type: ignore[attr-defined]
    data["list"].append(2)  # type: ignore[attr-defined]
    assert (await store.get_run(run.id)).input == {"text": "a", "list": [1]}
    assert (await store.read_events(run.id, 2))[0].data == {"text": "step", "list": [1]}


async def test_concurrent_appends_to_one_run_get_distinct_consecutive_seqs(
    store: RunStorePort,
) -> None:
    run = await started_run(store)
    events = await asyncio.gather(
        *(store.append_event(run.id, "RunStep", {"i": i}, at=AT) for i in range(20))
    )
    assert sorted(e.seq for e in events) == list(range(2, 22))
    assert [e.seq for e in await store.read_events(run.id)] == list(range(1, 22))


async def test_request_cancel_is_true_once_and_false_once_ended(store: RunStorePort) -> None:
    run = new_run()
    await store.create_run(run)
    assert await store.request_cancel(run.id, at=AT) is True
    assert await store.request_cancel(run.id, at=AT) is False
    assert (await store.get_run(run.id)).cancel_requested is True

    ended = await started_run(store)
    await store.append_event(ended.id, "RunFinished", {}, at=AT)
    assert await store.request_cancel(ended.id, at=AT) is False


def hours_before(hours: float) -> datetime:
    return AT - timedelta(hours=hours)


async def test_stale_runs_are_the_live_ones_updated_before_the_cutoff_oldest_first(
    store: RunStorePort,
) -> None:
    queued = new_run(created_at=hours_before(3), updated_at=hours_before(3))
    running = new_run(created_at=hours_before(4), updated_at=hours_before(4))
    # The same kind of instant written with another offset: stores compare instants, not text.
    east = timezone(timedelta(hours=2))
    in_between = new_run(
        created_at=hours_before(2).astimezone(east), updated_at=hours_before(2).astimezone(east)
    )
    ended = new_run(created_at=hours_before(5), updated_at=hours_before(5))
    at_the_cutoff = new_run()
    for run in [queued, running, in_between, ended, at_the_cutoff]:
        await store.create_run(run)
    await store.append_event(running.id, "RunStarted", {}, at=hours_before(1))
    await store.append_event(ended.id, "RunFailed", {}, at=hours_before(5))

    stale = await store.list_stale_runs(updated_before=AT)

    assert [(run.id, run.status, run.updated_at) for run in stale] == [
        (queued.id, RunStatus.QUEUED, hours_before(3)),
        (in_between.id, RunStatus.QUEUED, hours_before(2)),
        (running.id, RunStatus.RUNNING, hours_before(1)),
    ]
    assert stale[2] == await store.get_run(running.id)
    assert await store.list_stale_runs(updated_before=hours_before(2.5)) == stale[:1]


async def test_stale_runs_come_limit_at_a_time_with_ties_in_run_id_order(
    store: RunStorePort,
) -> None:
    base = new_run().id
    for suffix in ["c", "a", "b"]:
        await store.create_run(
            new_run(id=f"{base}-{suffix}", created_at=hours_before(1), updated_at=hours_before(1))
        )
    await store.create_run(new_run(created_at=hours_before(2), updated_at=hours_before(2)))
    stale = await store.list_stale_runs(updated_before=AT, limit=3)
    assert [run.id for run in stale][1:] == [f"{base}-a", f"{base}-b"]


async def test_an_append_or_a_cancel_request_makes_a_run_fresh_again(store: RunStorePort) -> None:
    appended = new_run(created_at=hours_before(2), updated_at=hours_before(2))
    flagged = new_run(created_at=hours_before(2), updated_at=hours_before(2))
    for run in [appended, flagged]:
        await store.create_run(run)
    await store.append_event(appended.id, "RunStarted", {}, at=AT)
    await store.request_cancel(flagged.id, at=AT)
    assert await store.list_stale_runs(updated_before=AT) == []
    later = await store.list_stale_runs(updated_before=AT + timedelta(seconds=1))
    assert sorted(run.id for run in later) == sorted([appended.id, flagged.id])


async def test_outbox_lists_pending_rows_in_order_per_run_or_all(store: RunStorePort) -> None:
    first = await started_run(store)
    second = await started_run(store)
    await store.append_event(first.id, "RunStep", {}, at=AT)
    rows = await store.pending_outbox()
    mine = [(r.event.run_id, r.event.seq) for r in rows if r.event.run_id in {first.id, second.id}]
    assert mine == [(first.id, 1), (second.id, 1), (first.id, 2)]
    assert [r.id for r in rows] == sorted(r.id for r in rows)
    assert [r.event.seq for r in await store.pending_outbox(first.id)] == [1, 2]
    assert await store.count_pending_outbox(first.id) == 2
    assert await store.count_pending_outbox() == len(rows)


async def test_rows_marked_published_leave_the_outbox(store: RunStorePort) -> None:
    run = await started_run(store)
    await store.append_event(run.id, "RunStep", {}, at=AT)
    async with store.claim_outbox(run_id=run.id) as claim:
        assert [r.event.seq for r in claim.rows] == [1, 2]
        await claim.mark_published(claim.rows[:1])
    assert [r.event.seq for r in await store.pending_outbox(run.id)] == [2]


async def test_a_failed_publish_releases_its_claim(store: RunStorePort) -> None:
    run = await started_run(store)
    claimed: list[int] = []

    async def publish_and_fail() -> None:
        async with store.claim_outbox(run_id=run.id) as claim:
            claimed.extend(r.event.seq for r in claim.rows)
            raise RuntimeError("bus down")

    with pytest.raises(RuntimeError, match="bus down"):
        await publish_and_fail()
    assert claimed == [1]
    async with store.claim_outbox(run_id=run.id) as again:
        assert [r.event.seq for r in again.rows] == [1]


async def test_two_publishers_never_claim_the_same_row(store: RunStorePort) -> None:
    run = await started_run(store)
    for _ in range(3):
        await store.append_event(run.id, "RunStep", {}, at=AT)
    async with store.claim_outbox(run_id=run.id, limit=2) as first:
        async with store.claim_outbox(run_id=run.id, limit=10) as second:
            assert [r.event.seq for r in first.rows] == [1, 2]
            assert [r.event.seq for r in second.rows] == [3, 4]
            await second.mark_published(second.rows)
        await first.mark_published(first.rows)
    assert await store.pending_outbox(run.id) == []


async def test_create_schema_is_idempotent_and_keeps_the_data(store: RunStorePort) -> None:
    run = await started_run(store)
    await store.create_schema()
    await store.create_schema()
    assert [e.seq for e in await store.read_events(run.id)] == [1]


async def test_wait_for_outbox_wakes_for_an_append_and_times_out_when_quiet(
    store: RunStorePort,
) -> None:
    run = new_run()
    await store.create_run(run)
    # The first calls may say True: a store cannot know what was appended before them.
    for _ in range(3):
        if not await store.wait_for_outbox(0.05):
            break
    assert await store.wait_for_outbox(0.05) is False
    await store.append_event(run.id, "RunStarted", {}, at=AT)
    assert await store.wait_for_outbox(10.0) is True
    assert await store.wait_for_outbox(0.05) is False


async def test_a_waiting_publisher_wakes_for_an_append_through_another_handle(
    store_pair: tuple[RunStorePort, RunStorePort],
) -> None:
    publisher_side, worker_side = store_pair
    run = new_run()
    await worker_side.create_run(run)
    for _ in range(3):
        if not await publisher_side.wait_for_outbox(0.05):
            break
    waiting = asyncio.create_task(publisher_side.wait_for_outbox(10.0))
    await asyncio.sleep(0.05)  # let it start waiting; an append before the wait counts too
    await worker_side.append_event(run.id, "RunStarted", {}, at=AT)
    assert await waiting is True


async def test_concurrent_appends_through_two_handles_get_distinct_consecutive_seqs(
    store_pair: tuple[RunStorePort, RunStorePort],
) -> None:
    first, second = store_pair
    run = await started_run(first)
    events = await asyncio.gather(
        *(
            (first if i % 2 else second).append_event(run.id, "RunStep", {"i": i}, at=AT)
            for i in range(30)
        )
    )
    assert sorted(e.seq for e in events) == list(range(2, 32))
    stored = await second.read_events(run.id)
    assert [e.seq for e in stored] == list(range(1, 32))
    assert {e.data["i"] for e in stored[1:]} == set(range(30))
    assert (await first.get_run(run.id)).last_seq == 31
    pending = await first.pending_outbox(run.id)
    assert [r.event.seq for r in pending] == list(range(1, 32))


async def test_two_publishers_on_separate_handles_never_claim_the_same_row(
    store_pair: tuple[RunStorePort, RunStorePort],
) -> None:
    first, second = store_pair
    run = await started_run(first)
    for _ in range(3):
        await first.append_event(run.id, "RunStep", {}, at=AT)
    async with first.claim_outbox(run_id=run.id, limit=2) as held:
        async with second.claim_outbox(run_id=run.id, limit=10) as other:
            assert [r.event.seq for r in held.rows] == [1, 2]
            assert [r.event.seq for r in other.rows] == [3, 4]
            await other.mark_published(other.rows)
        await held.mark_published(held.rows)
    assert await second.pending_outbox(run.id) == []


async def test_two_publishers_draining_at_once_publish_every_row_exactly_once(
    store_pair: tuple[RunStorePort, RunStorePort],
) -> None:
    first, second = store_pair
    runs = [await started_run(first) for _ in range(3)]
    for run in runs:
        for _ in range(9):
            await second.append_event(run.id, "RunStep", {}, at=AT)
    mine = {run.id for run in runs}
    published: list[tuple[str, int]] = []

    async def publish_until_empty(store: RunStorePort) -> None:
        for _ in range(100):  # bounded: 30 rows need far fewer rounds
            async with store.claim_outbox(limit=4) as claim:
                rows = [r for r in claim.rows if r.event.run_id in mine]
                if not rows:
                    return
                await asyncio.sleep(0)  # let the other publisher claim meanwhile
                published.extend((r.event.run_id, r.event.seq) for r in rows)
                await claim.mark_published(rows)

    await asyncio.gather(publish_until_empty(first), publish_until_empty(second))
    assert sorted(published) == sorted((run.id, seq) for run in runs for seq in range(1, 11))
    assert [r for r in await first.pending_outbox() if r.event.run_id in mine] == []


async def test_a_publisher_cancelled_inside_its_claim_releases_the_rows(
    store: RunStorePort,
) -> None:
    run = await started_run(store)
    await store.append_event(run.id, "RunStep", {}, at=AT)
    claimed = asyncio.Event()

    async def publish_forever() -> None:
        async with store.claim_outbox(run_id=run.id) as claim:
            await claim.mark_published(claim.rows[:1])
            claimed.set()
            await asyncio.Event().wait()

    publisher = asyncio.create_task(publish_forever())
    await asyncio.wait_for(claimed.wait(), 10.0)
    publisher.cancel()
    with pytest.raises(asyncio.CancelledError):
        await publisher
    async with store.claim_outbox(run_id=run.id) as again:
        assert [r.event.seq for r in again.rows] == [2]


async def test_a_cancellation_requested_through_one_handle_is_seen_through_the_other(
    store_pair: tuple[RunStorePort, RunStorePort],
) -> None:
    client_side, worker_side = store_pair
    run = await started_run(worker_side)
    assert await client_side.request_cancel(run.id, at=AT) is True
    assert (await worker_side.get_run(run.id)).cancel_requested is True
    await worker_side.append_event(
        run.id, "RunCancelled", {}, at=AT, expected_status=RunStatus.RUNNING
    )
    assert (await client_side.get_run(run.id)).status is RunStatus.CANCELLED
    assert await client_side.request_cancel(run.id, at=AT) is False


async def test_what_one_handle_wrote_outlives_its_closing(
    store_pair: tuple[RunStorePort, RunStorePort],
) -> None:
    writer, reader = store_pair
    run = await started_run(writer)
    await writer.aclose()
    await writer.aclose()  # idempotent
    assert [e.type for e in await reader.read_events(run.id)] == ["RunStarted"]
    assert (await reader.get_run(run.id)).status is RunStatus.RUNNING


async def test_appends_through_one_handle_after_another_handle_appended_take_the_next_seq(
    store_pair: tuple[RunStorePort, RunStorePort],
) -> None:
    # A handle may remember what it last wrote to a run; what another handle wrote since wins.
    first, second = store_pair
    run = await started_run(first)
    await first.append_event(run.id, "RunStep", {"by": "first"}, at=AT)
    await second.append_event(run.id, "RunStep", {"by": "second"}, at=AT)
    third = await first.append_event(run.id, "RunStep", {"by": "first again"}, at=AT)
    assert third.seq == 4
    await second.append_event(run.id, "RunFinished", {}, at=AT)
    with pytest.raises(InvalidTransition):
        await first.append_event(run.id, "RunStep", {}, at=AT)
    assert [e.seq for e in await second.read_events(run.id)] == [1, 2, 3, 4, 5]
    assert len(await first.pending_outbox(run.id)) == 5


async def test_the_retention_job_deletes_published_rows_only_and_keeps_the_events(
    store: RunStorePort,
) -> None:
    run = await started_run(store)
    for i in range(3):
        await store.append_event(run.id, "RunStep", {"i": i}, at=AT)
    async with store.claim_outbox(limit=2) as claim:
        await claim.mark_published(claim.rows)
    # Published just now: a day's retention keeps them (where the store keeps any).
    assert await store.delete_published_outbox(published_for=86_400) == 0
    deleted = await store.delete_published_outbox(published_for=0, limit=1)
    deleted += await store.delete_published_outbox(published_for=0)
    # The in-memory store drops rows as they are marked published: nothing left to delete.
    assert deleted == (0 if isinstance(store, InMemoryRunStore) else 2)
    assert [r.event.seq for r in await store.pending_outbox(run.id)] == [3, 4]
    assert [e.seq for e in await store.read_events(run.id)] == [1, 2, 3, 4]
