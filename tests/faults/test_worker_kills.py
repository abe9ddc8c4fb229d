"""Worker processes killed with SIGKILL mid-run: another worker resumes each run by replay, and
it finishes with every step executed once (only the one in flight at the kill may run again);
every stream matches the store."""

from __future__ import annotations

from pathlib import Path

import tests.faults.agents  # noqa: F401 - registers the agents here too, for start_run's check
from agents_run import use_infra
from tests.faults.cluster import long_or_short, running_cluster, services_config_on
from tests.faults.histories import check_against_store, counted_steps_problems
from tests.faults.kills import Workers, kill_mid_run

LEASE = "2"  # seconds: short, so that each take-over is quick
RECOVERY_BOUND = 30.0  # kill -> RunResumed, on a loaded 2-core machine (measured: about 1 lease)
STEPS = 6


async def test_killed_workers_runs_resume_elsewhere_and_run_every_step_once(tmp_path: Path) -> None:
    kills = long_or_short(20, 2)
    log = tmp_path / "executions.log"
    async with running_cluster(services_config_on()) as (cluster, infra):
        workers = Workers(cluster, ("--lease-seconds", LEASE))
        workers.start(2)
        cluster.publisher()
        with use_infra(infra):
            rounds = [
                await kill_mid_run(
                    workers, {"steps": STEPS, "log": str(log)}, kill_at_seq=3, bound=RECOVERY_BOUND
                )
                for _ in range(kills)
            ]
            checked = await check_against_store(infra.store, [r.streamed for r in rounds])
    assert checked.streams == kills
    assert counted_steps_problems([r.streamed for r in rounds], log, STEPS) == []


async def test_processes_stopped_right_after_their_start_wait_for_it_and_exit_cleanly() -> None:
    # SIGTERM before a process installs its handlers would end it -15: stop_all waits first.
    async with running_cluster(services_config_on()) as (cluster, _):
        cluster.worker()
        cluster.publisher()
