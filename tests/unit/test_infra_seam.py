from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from agents_run import (
    Infra,
    InMemoryEventBus,
    InMemoryQueue,
    InMemoryRunStore,
    ManualClock,
    SequentialIds,
    get_infra,
    reset_infra,
    set_infra,
    use_infra,
)
from agents_run.ids_and_time import RandomIds, SystemClock
from tests.unit.mocks.close_recording_adapters import (
    CloseRecordingBus,
    CloseRecordingQueue,
    CloseRecordingStore,
)


@pytest.fixture(autouse=True)
def _fresh_seam() -> Iterator[None]:
    reset_infra()
    yield
    reset_infra()


def test_tasks_created_before_the_first_get_infra_share_the_default() -> None:
    async def main() -> bool:
        async def read() -> Infra:
            return get_infra()

        early = asyncio.create_task(read())  # copies a context in which nothing is set
        return get_infra() is await early

    def in_a_context_with_nothing_set() -> bool:
        return asyncio.run(main())

    assert contextvars.Context().run(in_a_context_with_nothing_set)


def test_get_infra_builds_an_in_memory_default_once() -> None:
    infra = get_infra()
    assert isinstance(infra.bus, InMemoryEventBus)
    assert isinstance(infra.queue, InMemoryQueue)
    assert isinstance(infra.store, InMemoryRunStore)
    assert get_infra() is infra


def test_the_three_ports_are_enough_to_build_an_infra_with_production_ids_and_time() -> None:
    def by_hand() -> Infra:
        return Infra(bus=InMemoryEventBus(), queue=InMemoryQueue(), store=InMemoryRunStore())

    first, second = by_hand(), by_hand()
    assert isinstance(first.ids, RandomIds)
    assert isinstance(first.clock, SystemClock)
    # As two processes would: their run ids never collide.
    assert first.ids.new_run_id() != second.ids.new_run_id()
    before = datetime.now(UTC)
    assert before <= first.clock.now() <= datetime.now(UTC)


def test_in_memory_infra_has_sequential_ids_and_a_manual_clock() -> None:
    infra = Infra.in_memory()
    assert isinstance(infra.ids, SequentialIds)
    assert isinstance(infra.clock, ManualClock)
    assert [infra.ids.new_run_id(), infra.ids.new_run_id()] == ["run-000001", "run-000002"]
    assert infra.clock.now() == datetime(2026, 1, 1, tzinfo=UTC) == infra.clock.now()
    assert isinstance(get_infra().ids, SequentialIds)  # the process default is in-memory too


async def test_aclose_closes_the_bus_the_queue_and_the_store_once_each() -> None:
    closed: list[str] = []
    infra = Infra(
        bus=CloseRecordingBus(closed),
        queue=CloseRecordingQueue(closed),
        store=CloseRecordingStore(closed),
    )
    await infra.aclose()
    assert closed == ["bus", "queue", "store"]


def test_set_infra_from_sync_code_is_seen_inside_asyncio_run() -> None:
    mine = Infra.in_memory()
    set_infra(mine)

    async def inside() -> Infra:
        return get_infra()

    assert asyncio.run(inside()) is mine


def test_reset_infra_gives_a_fresh_default() -> None:
    before = get_infra()
    reset_infra()
    assert get_infra() is not before


def test_use_infra_restores_what_was_there() -> None:
    outer = get_infra()
    inner = Infra.in_memory()
    with use_infra(inner) as current:
        assert current is inner
        assert get_infra() is inner
    assert get_infra() is outer


def test_use_infra_restores_after_an_error() -> None:
    outer = get_infra()
    with pytest.raises(RuntimeError), use_infra(Infra.in_memory()):
        raise RuntimeError
    assert get_infra() is outer


async def test_concurrent_tasks_hold_their_own_infra() -> None:
    first, second = Infra.in_memory(), Infra.in_memory()
    gate = asyncio.Event()

    async def worker(infra: Infra) -> Infra:
        set_infra(infra)
        await gate.wait()
        return get_infra()

    tasks = [asyncio.create_task(worker(first)), asyncio.create_task(worker(second))]
    await asyncio.sleep(0)
    gate.set()
    assert await asyncio.gather(*tasks) == [first, second]


def test_set_infra_accepts_only_an_infra() -> None:
    with pytest.raises(TypeError, match="set_infra expects an Infra, got dict"):
        set_infra({})  # type: ignore[arg-type]


def test_use_infra_accepts_only_an_infra() -> None:
    with pytest.raises(TypeError, match="use_infra expects an Infra, got dict"), use_infra({}):  # type: ignore[arg-type]
        pass
