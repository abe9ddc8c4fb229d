from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from agents_run import (
    Infra,
    RunEvent,
    RunNotFound,
    drain_outbox_for_run,
    publish_pending_outbox_events_once,
    run_worker_once,
    start_run,
)
from agents_run.application.outbox_publisher import delete_published_outbox_rows
from tests.leaks import leaves_work_on_purpose

pytestmark = pytest.mark.deterministic


@pytest.fixture
def published(infra: Infra, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """(run id, seq) of every event the bus accepted, in order, whichever bus it is."""
    accepted: list[tuple[str, int]] = []
    bus_publish_batch = infra.bus.publish_batch

    async def publish_batch(events: Sequence[RunEvent]) -> None:
        await bus_publish_batch(events)
        accepted.extend((event.run_id, event.seq) for event in events)

    monkeypatch.setattr(infra.bus, "publish_batch", publish_batch)
    return accepted


async def test_the_publisher_publishes_every_pending_row_once_in_order(
    infra: Infra, published: list[tuple[str, int]]
) -> None:
    first = await start_run("echo", {"text": "a"})
    second = await start_run("echo", {"text": "b"})
    await run_worker_once()
    await run_worker_once()
    assert await publish_pending_outbox_events_once() == 6
    assert published == [(first, s) for s in (1, 2, 3)] + [(second, s) for s in (1, 2, 3)]
    assert await publish_pending_outbox_events_once() == 0
    assert await infra.store.pending_outbox() == []


@leaves_work_on_purpose
async def test_draining_one_run_leaves_the_others_pending(
    infra: Infra, published: list[tuple[str, int]]
) -> None:
    first = await start_run("echo", {"text": "a"})
    second = await start_run("echo", {"text": "b"})
    await run_worker_once()
    await run_worker_once()
    assert await drain_outbox_for_run(second) == 3
    assert published == [(second, 1), (second, 2), (second, 3)]
    assert [r.event.run_id for r in await infra.store.pending_outbox()] == [first] * 3


async def test_draining_an_unknown_run_raises(infra: Infra) -> None:
    with pytest.raises(RunNotFound):
        await drain_outbox_for_run("run-404")


async def test_a_failed_publish_keeps_the_batch_for_the_next_pass(
    infra: Infra, published: list[tuple[str, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = await start_run("echo", {"text": "a"})
    await run_worker_once()
    calls = 0
    real_publish_batch = infra.bus.publish_batch

    async def flaky_publish_batch(events: Sequence[RunEvent]) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("bus went away")
        await real_publish_batch(events)

    monkeypatch.setattr(infra.bus, "publish_batch", flaky_publish_batch)
    with pytest.raises(ConnectionError):
        await publish_pending_outbox_events_once()
    assert [r.event.seq for r in await infra.store.pending_outbox(run_id)] == [1, 2, 3]
    assert await publish_pending_outbox_events_once() == 3
    assert published == [(run_id, 1), (run_id, 2), (run_id, 3)]


@leaves_work_on_purpose  # the second batch stays for the next publisher
async def test_a_stopping_publisher_returns_after_the_batch_in_hand(
    infra: Infra, monkeypatch: pytest.MonkeyPatch
) -> None:
    await start_run("echo", {"text": "a b c"})
    await run_worker_once()  # 5 rows
    stop = asyncio.Event()
    real_publish_batch = infra.bus.publish_batch

    async def publish_then_get_sigterm(events: Sequence[RunEvent]) -> None:
        await real_publish_batch(events)
        stop.set()

    monkeypatch.setattr(infra.bus, "publish_batch", publish_then_get_sigterm)
    assert await publish_pending_outbox_events_once(stop=stop) == 1  # the first claim: 1 row
    assert await infra.store.count_pending_outbox() == 4


@leaves_work_on_purpose
async def test_each_claim_is_marked_and_ended_before_the_next_and_claims_double(
    infra: Infra, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A publisher killed mid-claim loses the marks of that claim only (on PostgreSQL the marks
    # of a claim commit with it): what earlier claims published stays marked.
    for _ in range(5):  # 15 rows
        await start_run("echo", {"text": "a"})
        await run_worker_once()
    done: list[str] = []
    claim_outbox = infra.store.claim_outbox

    @contextlib.asynccontextmanager
    async def claim(**kwargs: Any) -> AsyncIterator[Any]:
        async with claim_outbox(**kwargs) as held:
            mark = held.mark_published

            async def recorded_mark(rows: Any) -> None:
                await mark(rows)
                done.append(f"mark {len(rows)}")

            monkeypatch.setattr(held, "mark_published", recorded_mark)
            done.append(f"claim {len(held.rows)}")
            yield held
        done.append("end")

    monkeypatch.setattr(infra.store, "claim_outbox", claim)
    monkeypatch.setattr("agents_run.application.outbox_publisher.BATCH_SIZE", 4)
    assert await publish_pending_outbox_events_once() == 15
    sizes = [1, 2, 4, 4, 4]
    assert done == [step for size in sizes for step in (f"claim {size}", f"mark {size}", "end")]


class _Killed(BaseException):
    """The publisher process dying: nothing it had not written yet reaches the store."""


@leaves_work_on_purpose
async def test_a_publisher_killed_mid_batch_again_and_again_still_makes_progress(
    infra: Infra, monkeypatch: pytest.MonkeyPatch
) -> None:
    for _ in range(40):  # 40 runs x 3 rows = 120 pending rows, one batch
        await start_run("echo", {"text": "a"})
        await run_worker_once()
    assert await infra.store.count_pending_outbox() == 120
    bus_publish_batch, claim_outbox = infra.bus.publish_batch, infra.store.claim_outbox
    alive = {"publishes_left": 0}

    async def publish_batch(events: Sequence[RunEvent]) -> None:
        reached = list(events)[: alive["publishes_left"]]  # killed mid-pipeline: a part went out
        alive["publishes_left"] -= len(reached)
        await bus_publish_batch(reached)
        if len(reached) < len(events):
            raise _Killed

    @contextlib.asynccontextmanager
    async def claim(**kwargs: Any) -> AsyncIterator[Any]:
        async with claim_outbox(**kwargs) as held:
            mark = held.mark_published

            async def mark_unless_dead(rows: Any) -> None:
                if alive["publishes_left"] > 0:  # a dead process writes nothing more
                    await mark(rows)

            monkeypatch.setattr(held, "mark_published", mark_unless_dead)
            yield held

    monkeypatch.setattr(infra.bus, "publish_batch", publish_batch)
    monkeypatch.setattr(infra.store, "claim_outbox", claim)
    restarts = 0
    while await infra.store.count_pending_outbox() and restarts < 30:
        restarts += 1
        alive["publishes_left"] = 20  # killed after 20 publishes, every time
        with contextlib.suppress(_Killed):
            await publish_pending_outbox_events_once()
    # At least 15 of every 20 published rows are marked before the kill: 8 restarts, not never.
    assert await infra.store.count_pending_outbox() == 0
    assert restarts <= 8


async def test_the_retention_job_asks_the_store_for_rows_past_the_infra_s_retention(
    infra: Infra, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[tuple[float, int]] = []

    async def delete_published_outbox(*, published_for: float, limit: int = 1000) -> int:
        asked.append((published_for, limit))
        return limit if len(asked) < 3 else 1  # two full batches, then the last row

    monkeypatch.setattr(infra.store, "delete_published_outbox", delete_published_outbox)
    assert await delete_published_outbox_rows(batch=10) == 21
    assert asked == [(infra.outbox_retention_seconds, 10)] * 3
    asked.clear()
    assert await delete_published_outbox_rows(batch=10, most=15) == 15  # bounded per call
    assert asked == [(infra.outbox_retention_seconds, 10), (infra.outbox_retention_seconds, 5)]
