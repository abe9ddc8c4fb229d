"""running_worker(): a worker and a publisher beside the test, so that it can stream live and
cancel mid-run in a few lines; wait_for_run() waits for a run's end."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from agents_run import (
    DrainDidNotSettle,
    Infra,
    InMemoryEventBus,
    InMemoryQueue,
    InMemoryRunStore,
    RunContext,
    RunDidNotEnd,
    RunNotFound,
    run_until_idle,
    running_worker,
    start_run,
    stream_run,
    use_infra,
    wait_for_run,
)
from agents_run.domain.json_data import JsonObject
from agents_run.ports import Job

pytestmark = pytest.mark.deterministic_in_memory

Register = Callable[..., Callable[[Any], Any]]


async def test_a_run_streams_live_while_the_block_runs(infra: Infra) -> None:
    async with running_worker():
        run_id = await start_run("echo", {"text": "a b c"})
        events = [event async for event in stream_run(run_id)]
    assert [(e.seq, e.type, e.data.get("text")) for e in events] == [
        (1, "RunStarted", None),
        (2, "RunStep", "a"),
        (3, "RunStep", "b"),
        (4, "RunStep", "c"),
        (5, "RunFinished", None),
    ]


async def test_wait_for_run_returns_the_terminal_event(infra: Infra) -> None:
    async with running_worker():
        run_id = await start_run("echo", {"text": "a b"})
        terminal = await wait_for_run(run_id, timeout=30)
    assert (terminal.seq, terminal.type) == (4, "RunFinished")
    assert await wait_for_run(run_id, timeout=30) == terminal  # and again, once ended


async def test_wait_for_run_gives_up_after_its_timeout(infra: Infra) -> None:
    run_id = await start_run("echo", {"text": "never run"})
    with pytest.raises(RunDidNotEnd, match=f"run '{run_id}' did not end within 0.05s"):
        await wait_for_run(run_id, timeout=0.05)
    await run_until_idle()


async def test_wait_for_run_of_an_unknown_run_raises(infra: Infra) -> None:
    with pytest.raises(RunNotFound):
        await wait_for_run("run-999", timeout=1)


async def test_on_exit_it_runs_what_is_queued_and_publishes_it(infra: Infra) -> None:
    async with running_worker():
        run_ids = [await start_run("echo", {"text": "x y"}) for _ in range(3)]
    for run_id in run_ids:
        assert (await infra.store.get_run(run_id)).status == "finished"
    assert await infra.store.count_pending_outbox() == 0
    assert (await infra.queue.counts()).total == 0


async def test_concurrency_runs_runs_side_by_side(infra: Infra, register: Register) -> None:
    met = asyncio.Event()

    @register("waits-for-its-peer")
    async def waits(input: JsonObject) -> AsyncIterator[JsonObject]:
        await met.wait()
        yield {"met": True}

    @register("meets-its-peer")
    async def meets(input: JsonObject) -> AsyncIterator[JsonObject]:
        met.set()
        yield {"met": True}

    async with running_worker(concurrency=2):
        first = await start_run("waits-for-its-peer", {})
        second = await start_run("meets-its-peer", {})
        ends = [await wait_for_run(run_id, timeout=30) for run_id in (first, second)]
    assert [end.type for end in ends] == ["RunFinished", "RunFinished"]


async def test_work_that_outlasts_the_exit_bound_is_stopped_and_reported(
    infra: Infra, register: Register
) -> None:
    @register("never-ends")
    async def agent(input: JsonObject, ctx: RunContext) -> AsyncIterator[JsonObject]:
        yield {"started": True}
        await asyncio.Event().wait()
        yield {"never": True}

    with pytest.raises(DrainDidNotSettle, match=r"did not end within exit_timeout=0\.1s"):
        async with running_worker(exit_timeout=0.1):
            run_id = await start_run("never-ends", {})
    events = await infra.store.read_events(run_id)
    assert [e.type for e in events] == ["RunStarted", "RunStep", "RunFailed"]
    assert events[-1].data["error_type"] == "WorkerShutdown"
    assert await infra.store.count_pending_outbox() == 0


async def test_an_error_in_the_block_interrupts_the_runs_and_propagates(
    infra: Infra, register: Register
) -> None:
    entered = asyncio.Event()

    @register("long-step")
    async def agent(input: JsonObject) -> AsyncIterator[JsonObject]:
        entered.set()
        await asyncio.Event().wait()
        yield {"never": True}

    run_id = await start_run("long-step", {})

    async def block_that_fails() -> None:
        async with running_worker():
            await entered.wait()
            raise KeyError("the test's own error")

    with pytest.raises(KeyError, match="the test's own error"):
        await block_that_fails()
    assert (await infra.store.read_events(run_id))[-1].data["error_type"] == "WorkerShutdown"


class _BrokenQueue(InMemoryQueue):
    async def take_next(self) -> Job | None:
        raise ConnectionError("the queue went away")


async def test_what_the_worker_raised_is_raised_on_exit() -> None:
    broken = Infra(bus=InMemoryEventBus(), queue=_BrokenQueue(), store=InMemoryRunStore())
    with use_infra(broken), pytest.raises(ConnectionError, match="the queue went away"):
        async with running_worker():
            pass


@pytest.mark.parametrize(
    ("options", "says"),
    [({"concurrency": 0}, "concurrency must be an int >= 1"), ({"exit_timeout": 0}, "> 0")],
)
async def test_bad_options_are_refused_before_anything_starts(
    infra: Infra, options: dict[str, Any], says: str
) -> None:
    with pytest.raises(ValueError, match=says):
        async with running_worker(**options):
            pass
