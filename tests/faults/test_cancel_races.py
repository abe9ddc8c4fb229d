"""Cancel races against worker processes: before the take (a queued run), twice at once, right
as the run ends, and from another process (``agents-run cancel RUN_ID``). Each run ends with
exactly one terminal event; a cancel that returned True ends the run ``RunCancelled``, even
where the agent had already returned (the store turns that end into ``RunCancelled``), and one
that returned False found the run ended. Every stream matches the store."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import tests.faults.agents  # noqa: F401 - registers the agents here too, for start_run's check
from agents_run import RunEvent, cancel_run, start_run, stream_run, use_infra
from tests.faults.cluster import long_or_short, running_cluster, services_config_on, within
from tests.faults.histories import Streamed, check_against_store
from tests.services import process_env

BOUND = 60.0


async def collect(run_id: str) -> list[RunEvent]:
    return [event async for event in stream_run(run_id, poll_interval=0.1, idle_timeout=60)]


async def test_cancel_races_end_every_run_once_and_a_granted_cancel_ends_it_cancelled(
    tmp_path: Path,
) -> None:
    log = str(tmp_path / "executions.log")
    config = services_config_on()
    long_run = {"steps": 100, "log": log, "pause": 0.1}
    async with running_cluster(config) as (cluster, infra):
        with use_infra(infra):
            streams: dict[str, asyncio.Task[list[RunEvent]]] = {}

            async def started(input: dict[str, object]) -> str:
                run_id = await start_run("counted-steps", input)
                streams[run_id] = asyncio.create_task(collect(run_id))
                return run_id

            async def reached(run_id: str, seq: int) -> None:
                async def stored() -> bool:
                    return len(await infra.store.read_events(run_id, seq, limit=1)) == 1

                await within(BOUND, stored, f"{run_id} reached seq {seq}", every=0.01)

            # Before the take: no worker runs yet, the run is queued.
            queued = await started(long_run)
            assert await cancel_run(queued) is True
            cluster.worker("--concurrency", "3")
            cluster.publisher()

            # Twice at once, while it runs: one of the two requested it.
            twice = await started(long_run)
            await reached(twice, 3)
            assert sorted(await asyncio.gather(cancel_run(twice), cancel_run(twice))) == [
                False,
                True,
            ]

            # From another process, while a worker process runs it.
            other = await started(long_run)
            await reached(other, 3)
            command = [sys.executable, "-m", "agents_run.entrypoints.cli", "cancel", other]
            done = await asyncio.to_thread(
                subprocess.run, command, env=process_env(config), capture_output=True, timeout=BOUND
            )
            assert (done.returncode, done.stdout.strip()) == (0, b"cancellation requested"), done

            # Right as it ends: after its last step, before (or after) its RunFinished.
            against_finish = {}
            for round in range(long_or_short(12, 3)):
                pause = (0.0, 0.02, 0.05)[round % 3]  # after the last step too: before the end
                run_id = await started({"steps": 2, "log": log, "pause": pause})
                await reached(run_id, 3)  # the last RunStep
                against_finish[run_id] = await cancel_run(run_id)

            ended = await asyncio.wait_for(asyncio.gather(*streams.values()), BOUND)
            streamed = dict(zip(streams, ended, strict=True))
            checked = await check_against_store(
                infra.store, [Streamed(r, 1, e) for r, e in streamed.items()]
            )
    ends = {run_id: events[-1].type for run_id, events in streamed.items()}
    assert [e.type for e in streamed[queued]] == ["RunCancelled"]
    assert ends[twice] == "RunCancelled"
    assert ends[other] == "RunCancelled"
    for run_id, granted in against_finish.items():
        # True: the request was recorded, so whatever end the worker appends is RunCancelled.
        assert ends[run_id] == ("RunCancelled" if granted else "RunFinished")
    outcomes = sorted((granted, ends[r]) for r, granted in against_finish.items())
    print(f"\ncancel races: {checked}; against finish (granted, end): {outcomes}")
