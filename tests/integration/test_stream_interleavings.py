"""Generated interleavings of ``stream_run`` against the in-memory infra.

Hypothesis draws a schedule (appends, publishes, drops, duplicates, delays and swaps of live
deliveries, streams starting at a random ``from_seq``, streams left early); the test replays it
on an event loop it owns, one action then one loop turn. Invariant: each stream yields every seq
from its ``from_seq`` to the terminal event exactly once, in order (a stream left early: a prefix
of that), and ends within a bound once the run is over. Short form here (derandomized, so every
repeat tries the same schedules); ``AGENTS_RUN_INTERLEAVINGS=10000`` runs the long form.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agents_run import Infra, RunEvent, start_run, stream_run, use_infra
from agents_run.adapters.memory import InMemoryEventBus

pytestmark = pytest.mark.deterministic

EXAMPLES = int(os.environ.get("AGENTS_RUN_INTERLEAVINGS", "200"))
ACTIONS = ("append", "publish", "drop", "duplicate", "delay", "swap", "turn")
TERMINALS = ("RunFinished", "RunFailed", "RunCancelled")


@dataclass(frozen=True)
class Stream:
    from_seq: int
    starts_at: int  # index of the action before which the stream subscribes
    leaves_after: int | None  # events taken before leaving early; None: to the end


@dataclass(frozen=True)
class Schedule:
    steps: int
    terminal: str
    actions: list[str]
    streams: list[Stream]


@st.composite
def schedules(draw: st.DrawFn) -> Schedule:
    steps = draw(st.integers(0, 4))
    total = steps + 2
    actions = draw(st.lists(st.sampled_from(ACTIONS), max_size=40))
    stream = st.builds(
        Stream,
        from_seq=st.integers(1, total + 1),
        starts_at=st.integers(0, len(actions)),
        leaves_after=st.none() | st.integers(0, total),
    )
    return Schedule(
        steps=steps,
        terminal=draw(st.sampled_from(TERMINALS)),
        actions=actions,
        streams=draw(st.lists(stream, min_size=1, max_size=4)),
    )


async def _take(run_id: str, stream: Stream) -> list[int]:
    seqs: list[int] = []
    if stream.leaves_after == 0:
        return seqs
    async for event in stream_run(run_id, stream.from_seq, poll_interval=0.002, idle_timeout=10):
        seqs.append(event.seq)
        if len(seqs) == stream.leaves_after:
            break  # leaving early closes the stream
    return seqs


async def _replay(schedule: Schedule) -> tuple[list[Stream], list[list[int]], int]:
    infra = Infra.in_memory()
    with use_infra(infra):
        run_id = await start_run("echo", {"text": "x"})
        to_append = ["RunStarted"] + ["RunStep"] * schedule.steps + [schedule.terminal]
        unsent: list[RunEvent] = []  # appended, not yet on the bus: the live feed's backlog
        sent: list[RunEvent] = []
        started: list[Stream] = []  # in the order their tasks start
        tasks: list[asyncio.Task[list[int]]] = []

        async def append() -> None:
            type_ = to_append.pop(0)
            data = {"text": "x"} if type_ == "RunStep" else {}
            unsent.append(await infra.store.append_event(run_id, type_, data, at=infra.clock.now()))

        for index, action in enumerate([*schedule.actions, "end"]):
            for stream in schedule.streams:
                if stream.starts_at == index:
                    started.append(stream)
                    tasks.append(asyncio.create_task(_take(run_id, stream)))
            if action == "append" and to_append:
                await append()
            elif action == "publish" and unsent:
                sent.append(unsent.pop(0))
                await infra.bus.publish(sent[-1])
            elif action == "drop" and unsent:
                unsent.pop(0)  # pub/sub is at-most-once
            elif action == "duplicate" and sent:
                await infra.bus.publish(sent[-1])
            elif action == "delay" and unsent:
                unsent.append(unsent.pop(0))
            elif action == "swap" and len(unsent) > 1:
                unsent[0], unsent[1] = unsent[1], unsent[0]
            await asyncio.sleep(0)  # one turn of the loop for the streams
        while to_append:  # the run ends; the live feed carries nothing more
            await append()
        async with asyncio.timeout(5):  # the bound: no stream starves once the run is over
            results = list(await asyncio.gather(*tasks))
        assert isinstance(infra.bus, InMemoryEventBus)
        assert infra.bus.open_subscriptions() == []
        return started, results, schedule.steps + 2


@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(schedules())
def test_every_stream_yields_each_seq_once_in_order(schedule: Schedule) -> None:
    loop = asyncio.new_event_loop()
    try:
        streams, results, total = loop.run_until_complete(_replay(schedule))
    finally:
        loop.close()
    for stream, seqs in zip(streams, results, strict=True):
        expected = list(range(stream.from_seq, total + 1))
        if stream.leaves_after is not None:
            expected = expected[: stream.leaves_after]
        assert seqs == expected, (stream, seqs)
