"""Clients streaming a run in the test's process while faults happen: one live from seq 1 as
soon as the run starts, more opened later from any seq; each one's events for ``histories``."""

from __future__ import annotations

import asyncio

from agents_run import RunEvent, start_run, stream_run
from agents_run.domain.json_data import JsonObject
from tests.faults.histories import Streamed

POLL_INTERVAL = 0.2  # quick repairs from the store while the bus misbehaves
IDLE_TIMEOUT = 120.0  # the library's default: longer than any recovery a fault test allows


class RunStreams:
    """The streams of one run; ``collected`` waits for them all to end."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self._streams: list[tuple[int, asyncio.Task[list[RunEvent]]]] = []

    async def stream_from(self, from_seq: int) -> None:
        """Open a stream from ``from_seq`` now (it reads the store, then tails the bus)."""

        async def collect() -> list[RunEvent]:
            stream = stream_run(
                self.run_id, from_seq, poll_interval=POLL_INTERVAL, idle_timeout=IDLE_TIMEOUT
            )
            return [event async for event in stream]

        self._streams.append((from_seq, asyncio.create_task(collect())))
        await asyncio.sleep(0)  # let it start before the caller goes on

    async def collected(self) -> list[Streamed]:
        events = await asyncio.gather(*(task for _, task in self._streams))
        return [
            Streamed(self.run_id, from_seq, got)
            for (from_seq, _), got in zip(self._streams, events, strict=True)
        ]


async def start_run_streams(agent: str, run_input: JsonObject) -> RunStreams:
    """``start_run`` on the current infra, and a live stream of the run from seq 1."""
    run = RunStreams(await start_run(agent, run_input))
    await run.stream_from(1)
    return run
