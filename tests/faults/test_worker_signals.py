"""Worker processes stopped mid-run, as docs/operations.md promises: SIGTERM drains (the run in
hand finishes within ``--grace``) and the process exits 0; a second SIGTERM skips the grace (the
run ends ``RunFailed`` ``WorkerShutdown`` at its next step), still exit 0; SIGTERM then SIGKILL
(a supervisor out of patience) leaves the run to another worker, which resumes and finishes it.
Every stream matches the store."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from pathlib import Path

import tests.faults.agents  # noqa: F401 - registers the agents here too, for start_run's check
from agents_run import Infra, RunEvent, start_run, stream_run, use_infra
from tests.faults.cluster import Cluster, running_cluster, services_config_on, within
from tests.faults.histories import Streamed, check_against_store

LEASE = "2"
BOUND = 60.0  # for a run to reach a step, a process to exit, a run to end: a loaded machine


async def collect(run_id: str) -> list[RunEvent]:
    return [event async for event in stream_run(run_id, poll_interval=0.1, idle_timeout=60)]


async def worker_of_step(infra: Infra, run_id: str, seq: int) -> int:
    """The pid of the worker that executed the run's RunStep at ``seq``, once it is stored."""

    async def stored() -> bool:
        return len(await infra.store.read_events(run_id, seq, limit=1)) == 1

    await within(BOUND, stored, f"{run_id} reached seq {seq}")
    (step,) = await infra.store.read_events(run_id, seq, limit=1)
    return int(step.data["pid"])


def exit_code(process: subprocess.Popen[bytes]) -> int:
    return process.wait(timeout=BOUND)


async def test_sigterm_drains_a_second_one_stops_the_run_and_sigkill_after_it_hands_it_over(
    tmp_path: Path,
) -> None:
    log = str(tmp_path / "executions.log")
    async with running_cluster(services_config_on()) as (cluster, infra):
        workers = {p.pid: p for p in (cluster.worker("--lease-seconds", LEASE) for _ in range(2))}
        cluster.publisher()

        def replace(pid: int) -> subprocess.Popen[bytes]:
            stopped = workers.pop(pid)
            spare = cluster.worker("--lease-seconds", LEASE)
            workers[spare.pid] = spare
            return stopped

        with use_infra(infra):
            # 1. SIGTERM: the run in hand finishes (well within the 10 s grace); exit 0.
            drained = await start_run("counted-steps", {"steps": 5, "log": log, "pause": 0.1})
            streams = {drained: asyncio.create_task(collect(drained))}
            stopping = replace(await worker_of_step(infra, drained, 3))
            stopping.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(exit_code, stopping) == 0, cluster.log_of(stopping)

            # 2. SIGTERM twice: the grace is skipped, the run ends WorkerShutdown; exit 0.
            stopped = await start_run("counted-steps", {"steps": 200, "log": log, "pause": 0.2})
            streams[stopped] = asyncio.create_task(collect(stopped))
            stopping = replace(await worker_of_step(infra, stopped, 3))
            stopping.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.3)  # the first signal handled: the second one skips the grace
            stopping.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(exit_code, stopping) == 0, cluster.log_of(stopping)

            # 3. SIGTERM, then SIGKILL before the run ends: another worker resumes it.
            killed = await start_run("counted-steps", {"steps": 10, "log": log, "pause": 0.2})
            streams[killed] = asyncio.create_task(collect(killed))
            stopping = replace(await worker_of_step(infra, killed, 3))
            stopping.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.3)
            assert await asyncio.to_thread(Cluster.kill, cluster, stopping) == -signal.SIGKILL

            streamed = await asyncio.wait_for(asyncio.gather(*streams.values()), BOUND)
            checked = await check_against_store(
                infra.store,
                [Streamed(r, 1, e) for r, e in zip(streams, streamed, strict=True)],
            )
    ends = {run_id: events[-1] for run_id, events in zip(streams, streamed, strict=True)}
    assert ends[drained].type == "RunFinished", ends[drained]
    assert (ends[stopped].type, ends[stopped].data["error_type"]) == ("RunFailed", "WorkerShutdown")
    assert ends[killed].type == "RunFinished", ends[killed]
    killed_types = [event.type for event in streamed[2]]
    assert "RunResumed" in killed_types, killed_types
    print(f"\nworker SIGTERM, SIGTERM x2, SIGTERM+SIGKILL: {checked}")
