"""Transient faults are not run failures: a store that drops its connections, a Redis restart.
Workers and streams ride them out; a run fails only where its agent failed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from agents_run import (
    Infra,
    InfraUnavailable,
    ManualClock,
    RunContext,
    RunEvent,
    RunStatus,
    StreamIdleTimeout,
    register_agent,
    run_until_idle,
    run_worker_once,
    start_run,
    stream_run,
)
from agents_run.adapters.bullmq_queue import BullMQQueue
from agents_run.adapters.memory import InMemoryEventBus, InMemoryQueue, InMemoryRunStore
from agents_run.adapters.postgres_store import PostgresRunStore
from agents_run.application.agents import unregister_agent
from agents_run.application.infra import use_infra
from agents_run.application.processes import serve_publisher, serve_worker
from agents_run.application.sweep_runs import DEFAULT_REQUEUE_AFTER
from agents_run.application.take_over_runs import take_over_lapsed_runs
from agents_run.domain.json_data import JsonObject
from tests.leaks import leaves_work_on_purpose
from tests.postgres_server import terminate_connections
from tests.redis_server import own_redis_server
from tests.services import postgres_url, unique_prefix

DEADLINE = 30.0


async def types_of(infra: Infra, run_id: str) -> list[str]:
    return [event.type for event in await infra.store.read_events(run_id)]


def failing_calls(real: Any, failing: set[int], *, after_the_call: bool = False) -> Any:
    """``real``, raising InfraUnavailable on the calls numbered in ``failing`` (from 1), before
    the call reaches the store, or after it did (its reply lost) where ``after_the_call``."""
    calls = 0

    async def call(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls in failing and not after_the_call:
            raise InfraUnavailable("PostgreSQL is restarting")
        result = await real(*args, **kwargs)
        if calls in failing:
            raise InfraUnavailable("the connection was lost before the reply")
        return result

    return call


@pytest.mark.deterministic
@leaves_work_on_purpose  # the worker only appends
async def test_a_store_outage_mid_run_is_ridden_out_and_the_run_finishes(
    infra: Infra, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = await start_run("echo", {"text": "a b c"})
    # The second and third appends (the first RunStep, twice) and a cancel check fail.
    monkeypatch.setattr(
        infra.store, "append_event", failing_calls(infra.store.append_event, {2, 3})
    )
    monkeypatch.setattr(infra.store, "get_run", failing_calls(infra.store.get_run, {3}))
    assert await run_worker_once() is True
    events = await infra.store.read_events(run_id)
    assert [(e.seq, e.type, e.data.get("text")) for e in events] == [
        (1, "RunStarted", None),
        (2, "RunStep", "a"),
        (3, "RunStep", "b"),
        (4, "RunStep", "c"),
        (5, "RunFinished", None),
    ]
    assert (await infra.queue.counts()).total == 0


@pytest.mark.deterministic
@leaves_work_on_purpose
async def test_an_append_whose_reply_was_lost_is_found_in_the_store_not_made_twice(
    infra: Infra, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = await start_run("echo", {"text": "a a"})  # two equal steps: seqs tell them apart
    monkeypatch.setattr(
        infra.store,
        "append_event",
        failing_calls(infra.store.append_event, {2, 4}, after_the_call=True),
    )
    assert await run_worker_once() is True
    assert await types_of(infra, run_id) == ["RunStarted", "RunStep", "RunStep", "RunFinished"]


@pytest.mark.deterministic
@pytest.mark.agents_run_memory_only(reason="a networked queue retries a failed job after a delay")
async def test_an_outage_longer_than_the_bound_fails_the_attempt_and_the_run_is_taken_over(
    infra: Infra, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = await start_run("echo", {"text": "a"})
    with monkeypatch.context() as outage:
        outage.setattr(
            infra.store, "append_event", failing_calls(infra.store.append_event, set(range(2, 99)))
        )
        with pytest.raises(InfraUnavailable):
            await run_worker_once(store_outage_bound=0.3)
    # The worker released its lease on the way out: the run is taken over at once.
    assert await take_over_lapsed_runs() == [run_id]
    await run_until_idle()  # the job's retry finds the run ended
    events = await infra.store.read_events(run_id)
    assert [e.type for e in events] == ["RunStarted", "RunResumed", "RunStep", "RunFinished"]
    assert events[1].data == {"attempt": 2, "resumed_after_seq": 1}


@pytest.mark.deterministic
async def test_a_stream_rides_out_a_store_outage(
    infra: Infra, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = await start_run("echo", {"text": "a b"})
    await run_until_idle()
    monkeypatch.setattr(infra.store, "read_events", failing_calls(infra.store.read_events, {1, 2}))
    monkeypatch.setattr(infra.store, "get_run", failing_calls(infra.store.get_run, {1}))
    seen = [event.type async for event in stream_run(run_id)]
    assert seen == ["RunStarted", "RunStep", "RunStep", "RunFinished"]


@pytest.mark.deterministic
async def test_a_stream_gives_up_once_the_outage_outlasts_its_idle_timeout(
    infra: Infra, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = await start_run("echo", {"text": "a"})
    await run_until_idle()
    monkeypatch.setattr(
        infra.store, "read_events", failing_calls(infra.store.read_events, set(range(1, 999)))
    )
    with pytest.raises(InfraUnavailable, match="PostgreSQL is restarting"):
        async for _ in stream_run(run_id, idle_timeout=0.5):
            pass


@pytest.fixture
def stepping_agent() -> Iterator[str]:
    """An agent whose two steps are recorded ``ctx.step`` results."""
    name = "records-two-steps"

    @register_agent(name)
    async def agent(input: JsonObject, ctx: RunContext) -> AsyncIterator[JsonObject]:
        for index in range(2):
            yield await ctx.step(f"step {index}", dict, index=index)

    yield name
    unregister_agent(name)


@pytest.mark.deterministic
@pytest.mark.parametrize("reply_lost", [False, True], ids=["before-the-store", "reply-lost"])
@leaves_work_on_purpose  # the worker only appends
async def test_a_store_outage_while_a_step_result_is_recorded_is_ridden_out(
    infra: Infra, monkeypatch: pytest.MonkeyPatch, stepping_agent: str, reply_lost: bool
) -> None:
    run_id = await start_run(stepping_agent, {})
    record_step = failing_calls(infra.store.record_step, {1}, after_the_call=reply_lost)
    monkeypatch.setattr(infra.store, "record_step", record_step)
    # The check for a lost reply fails too: the worker must check again, not record again.
    monkeypatch.setattr(infra.store, "read_steps", failing_calls(infra.store.read_steps, {1}))
    assert await run_worker_once() is True
    events = await infra.store.read_events(run_id)
    assert [(e.type, e.data) for e in events] == [
        ("RunStarted", {"agent": stepping_agent}),
        ("RunStep", {"index": 0}),
        ("RunStep", {"index": 1}),
        ("RunFinished", {}),
    ]
    assert [s.index for s in await infra.store.read_steps(run_id)] == [1, 2]


def hanging_after(real: Any, answered: int) -> Any:
    """``real`` for its first ``answered`` calls; from then on a call that never returns (a
    store behind a dead network)."""
    calls = 0

    async def call(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls > answered:
            await asyncio.Event().wait()
        return await real(*args, **kwargs)

    return call


@pytest.mark.deterministic
@pytest.mark.parametrize(
    ("hung", "answered"),
    [("get_run", 0), ("get_run", 1), ("read_events", 0), ("read_events", 1)],
    ids=["first-get-run", "get-run-once-live", "first-read", "re-read-once-live"],
)
@leaves_work_on_purpose  # the run stays queued: the stream is live when the store hangs
async def test_a_hung_store_does_not_hold_a_stream_past_its_idle_timeout(
    infra: Infra, monkeypatch: pytest.MonkeyPatch, hung: str, answered: int
) -> None:
    run_id = await start_run("echo", {"text": "a"})
    monkeypatch.setattr(infra.store, hung, hanging_after(getattr(infra.store, hung), answered))
    async with asyncio.timeout(DEADLINE):  # without the fix: a hang
        with pytest.raises(StreamIdleTimeout, match="did not answer in time"):
            async for _ in stream_run(run_id, idle_timeout=0.5, poll_interval=0.05):
                pass


# --- on the real servers -------------------------------------------------------------------


@pytest.fixture
def gated_agent() -> Iterator[tuple[str, asyncio.Event, asyncio.Event]]:
    """An agent that yields a step, waits for the test, then yields three more."""
    name, reached, opened = "waits-for-an-outage", asyncio.Event(), asyncio.Event()
    waiting = 0

    @register_agent(name)
    async def agent(input: JsonObject) -> AsyncIterator[JsonObject]:
        nonlocal waiting
        yield {"step": 0}
        waiting += 1
        if waiting == int(input["runs"]):
            reached.set()
        await opened.wait()
        for step in range(1, 4):
            yield {"step": step}

    yield name, reached, opened
    unregister_agent(name)


async def collect(stream: AsyncIterator[RunEvent]) -> list[RunEvent]:
    return [event async for event in stream]


async def test_terminating_every_postgresql_connection_mid_run_fails_no_run_and_breaks_no_stream(
    gated_agent: tuple[str, asyncio.Event, asyncio.Event],
) -> None:
    name, reached, opened = gated_agent
    schema = f"t_outage_{unique_prefix('pg').split('-')[-1]}"
    store = PostgresRunStore(postgres_url(), schema=schema)
    await store.create_schema()
    infra = Infra(bus=InMemoryEventBus(), queue=InMemoryQueue(), store=store)
    try:
        with use_infra(infra):
            run_ids = [await start_run(name, {"runs": 3}) for _ in range(3)]
            stop_publishing = asyncio.Event()
            publisher = asyncio.create_task(serve_publisher(stop=stop_publishing, idle_wait=0.1))
            streams = [
                asyncio.create_task(collect(stream_run(run_id, poll_interval=0.1)))
                for run_id in run_ids
            ]
            workers = [asyncio.create_task(run_worker_once()) for _ in run_ids]
            await asyncio.wait_for(reached.wait(), DEADLINE)
            assert await terminate_connections(store.application_name) >= 1
            opened.set()
            assert await asyncio.wait_for(asyncio.gather(*workers), DEADLINE) == [True] * 3
            streamed = await asyncio.wait_for(asyncio.gather(*streams), DEADLINE)
            stop_publishing.set()
            await asyncio.wait_for(publisher, DEADLINE)
            for run_id, events in zip(run_ids, streamed, strict=True):
                assert [e.seq for e in events] == [1, 2, 3, 4, 5, 6]
                assert events[-1].type == "RunFinished"
                assert (await store.get_run(run_id)).status is RunStatus.FINISHED
    finally:
        await store.drop_schema()
        await store.aclose()


async def test_after_a_redis_restart_the_queued_runs_are_enqueued_again_and_run() -> None:
    clock = ManualClock()
    async with own_redis_server() as redis_server:
        queue = BullMQQueue(redis_server.url, key_prefix=unique_prefix("restart"), retry_delay_ms=1)
        infra = Infra(bus=InMemoryEventBus(), queue=queue, store=InMemoryRunStore(), clock=clock)
        try:
            with use_infra(infra):
                run_ids = [await start_run("echo", {"text": f"run {n}"}) for n in range(3)]
                await redis_server.restart()  # no persistence: the three jobs are gone
                assert await redis_server.key_count() == 0

                clock.advance(DEFAULT_REQUEUE_AFTER + 1)
                draining = asyncio.Event()
                worker = asyncio.create_task(
                    serve_worker(
                        draining=draining, stop=asyncio.Event(), idle_poll=0.05, sweep_interval=0.05
                    )
                )
                async with asyncio.timeout(DEADLINE):
                    for run_id in run_ids:
                        while not (await infra.store.get_run(run_id)).status.is_terminal:  # noqa: ASYNC110
                            await asyncio.sleep(0.05)
                draining.set()
                assert await asyncio.wait_for(worker, DEADLINE) == 3
                for run_id in run_ids:
                    assert (await types_of(infra, run_id))[-1] == "RunFinished"
                await run_until_idle()
        finally:
            await queue.aclose()
