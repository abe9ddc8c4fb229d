"""A run from start to finish through the seam: persist, drain the outbox, stream from a seq."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from agents_run import (
    Infra,
    RunEvent,
    drain_outbox_for_run,
    register_agent,
    run_worker_once,
    start_run,
    stream_run,
)
from agents_run.domain.json_data import JsonObject

pytestmark = pytest.mark.deterministic


async def test_backfill_then_live_tail_gives_every_seq_once_and_ends_finished(
    infra: Infra,
) -> None:
    halfway = asyncio.Event()
    resume = asyncio.Event()

    @register_agent("pauses-halfway")
    async def agent(input: JsonObject) -> AsyncIterator[JsonObject]:
        for word in ("one", "two"):
            yield {"text": word}
        halfway.set()
        await resume.wait()
        for word in ("three", "four"):
            yield {"text": word}

    run_id = await start_run("pauses-halfway", {})
    worker = asyncio.create_task(run_worker_once())
    await asyncio.wait_for(halfway.wait(), 2)
    assert await drain_outbox_for_run(run_id) == 3  # RunStarted and two steps, persisted

    received: list[RunEvent] = []
    stream = stream_run(run_id, from_seq=2, poll_interval=5)
    received.append(await anext(stream))
    received.append(await anext(stream))
    backfilled = len(received)

    resume.set()
    assert await asyncio.wait_for(worker, 2) is True
    assert await drain_outbox_for_run(run_id) == 3  # two steps and RunFinished, live
    received.extend([e async for e in stream])

    assert backfilled == 2
    assert [e.data.get("text") for e in received] == ["one", "two", "three", "four", None]
    seqs = [e.seq for e in received]
    assert seqs == list(range(2, 7))
    assert received[-1].type == "RunFinished"
    assert [e.type for e in received].count("RunFinished") == 1
