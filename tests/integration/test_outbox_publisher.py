from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
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
from tests.leaks import leaves_work_on_purpose

pytestmark = pytest.mark.deterministic


@pytest.fixture
def published(infra: Infra, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """(run id, seq) of every event the bus accepted, in order, whichever bus it is."""
    accepted: list[tuple[str, int]] = []
    bus_publish = infra.bus.publish

    async def publish(event: RunEvent) -> None:
        await bus_publish(event)
        accepted.append((event.run_id, event.seq))

    monkeypatch.setattr(infra.bus, "publish", publish)
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


async def test_a_failed_publish_keeps_the_row_for_the_next_pass(
    infra: Infra, published: list[tuple[str, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = await start_run("echo", {"text": "a"})
    await run_worker_once()
    calls = 0
    real_publish = infra.bus.publish

    async def flaky_publish(event):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        if calls == 2:
            raise ConnectionError("bus went away")
        await real_publish(event)

    monkeypatch.setattr(infra.bus, "publish", flaky_publish)
    with pytest.raises(ConnectionError):
        await publish_pending_outbox_events_once()
    assert [r.event.seq for r in await infra.store.pending_outbox(run_id)] == [2, 3]
    assert await publish_pending_outbox_events_once() == 2
    assert published == [(run_id, 1), (run_id, 2), (run_id, 3)]


@leaves_work_on_purpose  # the second batch stays for the next publisher
async def test_a_stopping_publisher_returns_after_the_batch_in_hand(
    infra: Infra, monkeypatch: pytest.MonkeyPatch
) -> None:
    await start_run("echo", {"text": "a b c"})
    await run_worker_once()  # 5 rows
    stop = asyncio.Event()
    real_publish = infra.bus.publish

    async def publish_then_get_sigterm(event: RunEvent) -> None:
        await real_publish(event)
        stop.set()

    monkeypatch.setattr(infra.bus, "publish", publish_then_get_sigterm)
    monkeypatch.setattr("agents_run.application.outbox_publisher.BATCH_SIZE", 2)
    assert await publish_pending_outbox_events_once(stop=stop) == 2
    assert await infra.store.count_pending_outbox() == 3


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
    bus_publish, claim_outbox = infra.bus.publish, infra.store.claim_outbox
    alive = {"publishes_left": 0}

    async def publish(event: RunEvent) -> None:
        if alive["publishes_left"] == 0:
            raise _Killed
        alive["publishes_left"] -= 1
        await bus_publish(event)

    @contextlib.asynccontextmanager
    async def claim(**kwargs: Any) -> AsyncIterator[Any]:
        async with claim_outbox(**kwargs) as held:
            mark = held.mark_published

            async def mark_unless_dead(rows: Any) -> None:
                if alive["publishes_left"] > 0:  # a dead process writes nothing more
                    await mark(rows)

            monkeypatch.setattr(held, "mark_published", mark_unless_dead)
            yield held

    monkeypatch.setattr(infra.bus, "publish", publish)
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
