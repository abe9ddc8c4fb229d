"""One worker kill -9 in the middle of a ``counted-steps`` run, timed: the round that
``test_worker_kills.py`` checks and ``benchmarks.lease_takeover`` measures.

The kill lands on the worker whose pid the run's step recorded (``ctx.step`` results), as soon
as that step is in the store; a fresh worker replaces it. Times are from the kill to
``RunResumed`` in the store, to a client's stream receiving it, and to the run's terminal
event in the store."""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import time

from agents_run import RunEvent, get_infra, start_run, stream_run
from agents_run.domain.json_data import JsonObject
from tests.faults.cluster import Cluster, within
from tests.faults.histories import TERMINAL_TYPES, Streamed

COUNTED_STEPS = "counted-steps"  # the agent of tests/faults/agents.py


@dataclasses.dataclass(frozen=True)
class KillRound:
    """What one kill did to one run, in seconds after the kill."""

    run_id: str
    killed_pid: int
    to_resumed: float
    to_streamed: float
    to_finished: float
    streamed: Streamed


@dataclasses.dataclass
class Workers:
    """The cluster's live worker processes by pid, started with ``args``."""

    cluster: Cluster
    args: tuple[str, ...] = ()
    by_pid: dict[int, subprocess.Popen[bytes]] = dataclasses.field(default_factory=dict)

    def start(self, count: int = 1) -> None:
        for _ in range(count):
            process = self.cluster.worker(*self.args)
            self.by_pid[process.pid] = process

    def kill(self, pid: int) -> float:
        """SIGKILL the worker ``pid`` (one of ours) and start another; the time of the kill."""
        process = self.by_pid.pop(pid)
        killed_at = time.monotonic()
        self.cluster.kill(process)
        self.start()
        return killed_at

    async def started(self, bound: float) -> None:
        """Wait until every worker logged that it started (and handles SIGTERM)."""

        async def all_started() -> bool:
            return all(self.cluster.has_started(process) for process in self.by_pid.values())

        await within(bound, all_started, "every worker process started")


async def _stream(run_id: str, resumed_at: list[float], idle_timeout: float) -> list[RunEvent]:
    events = []
    async for event in stream_run(run_id, poll_interval=0.1, idle_timeout=idle_timeout):
        if event.type == "RunResumed":
            resumed_at.append(time.monotonic())
        events.append(event)
    return events


async def kill_mid_run(
    workers: Workers, input: JsonObject, *, kill_at_seq: int, bound: float
) -> KillRound:
    """Start a ``counted-steps`` run with ``input``, kill its worker once seq ``kill_at_seq`` (a
    step) is stored, and wait for the run to resume and end. Each wait fails after ``bound``."""
    store = get_infra().store
    run_id = await start_run(COUNTED_STEPS, input)
    resumed_at: list[float] = []
    stream = asyncio.create_task(_stream(run_id, resumed_at, idle_timeout=bound * 2))

    async def stored(seq: int) -> bool:
        return len(await store.read_events(run_id, seq, limit=1)) == 1

    await within(
        bound, lambda: stored(kill_at_seq), f"{run_id} reached seq {kill_at_seq}", every=0.01
    )
    (step,) = await store.read_events(run_id, kill_at_seq, limit=1)
    pid = int(step.data["pid"])
    killed_at = workers.kill(pid)

    async def has(types: set[str]) -> bool:
        return any(event.type in types for event in await store.read_events(run_id, kill_at_seq))

    await within(
        bound, lambda: has({"RunResumed"}), f"{run_id} resumed after kill of {pid}", every=0.02
    )
    resumed = time.monotonic() - killed_at
    await within(
        bound, lambda: has(TERMINAL_TYPES), f"{run_id} ended after kill of {pid}", every=0.02
    )
    finished = time.monotonic() - killed_at
    events = await asyncio.wait_for(stream, bound)
    await workers.started(bound)
    streamed = resumed_at[0] - killed_at if resumed_at else float("nan")
    return KillRound(run_id, pid, resumed, streamed, finished, Streamed(run_id, 1, events))
