"""P5: the in-memory harness, start -> worker -> outbox -> stream, in events per second, against
a minimal asyncio pipeline doing the same appends and deliveries, and Dramatiq's ``StubBroker``.

    .venv/bin/python -m benchmarks.p5_in_memory [--quick]

Each round: 2,000 ``echo`` runs of 10 events (``RunStarted``, 8 ``RunStep``, ``RunFinished``)
started, executed one after another by ``run_worker_once``, published by the outbox publisher,
and streamed back by ``stream_run``. The pipeline keeps runs, events and an outbox in dicts and
lists, jobs in an ``asyncio.Queue``, checks each transition and delivers to subscribers. Dramatiq
processes one no-op message per event (a worker thread, ``broker.join``).
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from typing import Any

from agents_run import (
    Infra,
    publish_pending_outbox_events_once,
    run_worker_once,
    start_run,
    stream_run,
    use_infra,
)
from benchmarks.measure import Figure, alternate, main, ratios

WORDS = " ".join(f"w{i}" for i in range(8))
EVENTS_PER_RUN = 10


async def harness(runs: int) -> float:
    """Events per second through the harness on fresh in-memory infra."""
    with use_infra(Infra.in_memory()):
        began = time.perf_counter()
        run_ids = [await start_run("echo", {"text": WORDS}) for _ in range(runs)]
        while await run_worker_once():
            pass
        await publish_pending_outbox_events_once()
        streamed = 0
        for run_id in run_ids:
            async for _ in stream_run(run_id):
                streamed += 1
        elapsed = time.perf_counter() - began
    assert streamed == runs * EVENTS_PER_RUN
    return streamed / elapsed


class MinimalPipeline:
    """What a user might write instead: dicts, lists, one ``asyncio.Queue``."""

    def __init__(self) -> None:
        self.runs: dict[str, dict[str, Any]] = {}
        self.events: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.outbox: list[dict[str, Any]] = []
        self.jobs: asyncio.Queue[str] = asyncio.Queue()
        self.subscribers: dict[str, list[asyncio.Queue[dict[str, Any]]]] = defaultdict(list)
        self.published = 0

    async def start(self, text: str) -> str:
        run_id = f"run-{len(self.runs) + 1:06d}"
        self.runs[run_id] = {"input": {"text": text}, "status": "queued", "last_seq": 0}
        await self.jobs.put(run_id)
        return run_id

    async def append(self, run_id: str, type: str, data: dict[str, Any]) -> None:
        run = self.runs[run_id]
        if run["status"] in ("finished", "failed", "cancelled"):
            raise RuntimeError("run ended")
        run["last_seq"] += 1
        run["status"] = "finished" if type == "RunFinished" else "running"
        event = {"run_id": run_id, "seq": run["last_seq"], "type": type, "data": dict(data)}
        self.events[run_id].append(event)
        self.outbox.append(event)

    async def work_once(self) -> bool:
        if self.jobs.empty():
            return False
        run_id = self.jobs.get_nowait()
        await self.append(run_id, "RunStarted", {"agent": "echo"})
        for word in self.runs[run_id]["input"]["text"].split():
            await self.append(run_id, "RunStep", {"text": word})
        await self.append(run_id, "RunFinished", {})
        return True

    async def publish(self) -> None:
        rows, self.outbox = self.outbox, []
        for event in rows:
            for queue in self.subscribers.get(event["run_id"], []):
                queue.put_nowait(event)
            self.published += 1

    async def stream(self, run_id: str) -> int:
        return len(self.events[run_id])


async def pipeline(runs: int) -> float:
    began = time.perf_counter()
    work = MinimalPipeline()
    run_ids = [await work.start(WORDS) for _ in range(runs)]
    while await work.work_once():
        pass
    await work.publish()
    streamed = 0
    for run_id in run_ids:
        streamed += await work.stream(run_id)
    elapsed = time.perf_counter() - began
    assert streamed == runs * EVENTS_PER_RUN
    return streamed / elapsed


def dramatiq_rate(messages: int) -> float:
    """No-op messages per second through Dramatiq's ``StubBroker`` and one worker."""
    # Imported here: Dramatiq comes with the bench extra only.
    import dramatiq  # noqa: PLC0415
    from dramatiq.brokers.stub import StubBroker  # noqa: PLC0415

    broker = StubBroker()
    broker.emit_after("process_boot")
    dramatiq.set_broker(broker)

    @dramatiq.actor(broker=broker, queue_name="bench")
    def step(run_id: str, seq: int) -> None:
        return None

    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=10)
    worker.start()
    try:
        began = time.perf_counter()
        for seq in range(messages):
            step.send("run", seq)
        broker.join("bench", fail_fast=True)
        worker.join()
        elapsed = time.perf_counter() - began
    finally:
        worker.stop()
        broker.close()
    return messages / elapsed


def figures(quick: bool) -> list[Figure]:
    runs, pairs = (200, 3) if quick else (2000, 9)
    ours, theirs = alternate(
        pairs,
        lambda: asyncio.run(harness(runs)),
        lambda: asyncio.run(pipeline(runs)),
    )
    messages = runs if quick else runs * 2
    dramatiq = [dramatiq_rate(messages) for _ in range(max(2, pairs // 3))]
    dramatiq_median = sorted(dramatiq)[len(dramatiq) // 2]
    median_ours = sorted(ours)[len(ours) // 2]
    return [
        Figure(
            "P5",
            f"in-memory start -> worker -> outbox -> stream, {runs:,} runs x 10 events",
            "minimal asyncio pipeline, same appends and deliveries",
            ratios(ours, theirs),
            ">= 0.5x",
            limit=0.5,
            detail=f"{median_ours:,.0f} vs {sorted(theirs)[len(theirs) // 2]:,.0f} events/s",
        ),
        Figure(
            "P5",
            "the same, events/s",
            "Dramatiq `StubBroker`, no-op messages/s",
            [rate / dramatiq_median for rate in ours],
            ">= 10x",
            limit=10.0,
            detail=f"Dramatiq {dramatiq_median:,.0f} messages/s",
        ),
    ]


if __name__ == "__main__":
    main(figures)
