"""How long after a worker is killed -9 mid-run another worker resumes the run, across processes
on Redis and PostgreSQL, and whether the run then finishes with every step executed once.

    .venv/bin/python -m benchmarks.lease_takeover [--kills 20] [--workers 2] [--lease-seconds S]

Run it from the repository's root: the worker processes import the fault tests' agent
(``tests.faults.agents``). Each round starts a run of ``counted-steps`` (its steps go through
``ctx.step``, which records the worker's pid and logs each execution), kills with SIGKILL the
worker that recorded the run's second step as soon as that step is in the store, and times how
long until ``RunResumed`` is in the store, until a client streaming the run receives it, and
until the run has ended. A fresh worker replaces the killed one. The rounds are the fault
test's (``tests/faults/kills.py``); the servers are AGENTS_RUN_TEST_REDIS_URL and
AGENTS_RUN_TEST_POSTGRES_URL (defaults: the local servers), in a throwaway namespace.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
from pathlib import Path

import tests.faults.agents  # noqa: F401 - registers the agent here too, for start_run
from tests.faults.cluster import running_cluster, services_config_on
from tests.faults.histories import check_against_store, counted_steps_problems, step_executions
from tests.faults.kills import KillRound, Workers, kill_mid_run

from agents_run import use_infra
from benchmarks.measure import POSTGRES_URL, REDIS_URL

ROUND_BOUND = 60.0  # seconds any wait of a round may take before the benchmark fails
STEPS = 8
PAUSE = 0.25  # seconds after each step: the run is still going when the kill lands
KILL_AT_SEQ = 3  # the run's second step (seq 1 is RunStarted)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def summary(what: str, values: list[float]) -> str:
    return (
        f"  {what:30s} p50 {statistics.median(values):.2f} s  p90 {percentile(values, 0.9):.2f} s"
        f"  p99 {percentile(values, 0.99):.2f} s  max {max(values):.2f} s"
    )


async def main(kills: int, worker_count: int, lease_seconds: float | None) -> int:
    config = services_config_on(REDIS_URL, POSTGRES_URL)
    lease = lease_seconds if lease_seconds is not None else config.lease_seconds
    rounds: list[KillRound] = []
    with tempfile.TemporaryDirectory(prefix="agents-run-bench-") as folder:
        log = Path(folder) / "executions.log"
        async with running_cluster(config) as (cluster, infra):
            workers = Workers(cluster, ("--lease-seconds", str(lease)))
            workers.start(worker_count)
            cluster.publisher()
            with use_infra(infra):
                await workers.started(ROUND_BOUND)
                for number in range(1, kills + 1):
                    run = {"steps": STEPS, "log": str(log), "pause": PAUSE}
                    done = await kill_mid_run(
                        workers, run, kill_at_seq=KILL_AT_SEQ, bound=ROUND_BOUND
                    )
                    rounds.append(done)
                    print(
                        f"kill {number:2d}: RunResumed in the store after {done.to_resumed:.2f} s, "
                        f"in the stream after {done.to_streamed:.2f} s; ended after "
                        f"{done.to_finished:.2f} s",
                        flush=True,
                    )
                checked = await check_against_store(infra.store, [r.streamed for r in rounds])
        problems = counted_steps_problems([r.streamed for r in rounds], log, STEPS)
        again = sum(count - 1 for count in step_executions(log).values() if count > 1)
    print(f"\n{kills} kills, {worker_count} workers, lease {lease:g} s, {STEPS} steps a run:")
    print(summary("kill -> RunResumed (store)", [r.to_resumed for r in rounds]))
    print(summary("kill -> RunResumed (stream)", [r.to_streamed for r in rounds]))
    print(summary("kill -> run ended (store)", [r.to_finished for r in rounds]))
    print(f"  streams: {checked}")
    print(
        f"  steps: {kills * STEPS} recorded, {again} executed twice (in flight at a kill); "
        f"{len(problems)} problems"
    )
    for problem in problems:
        print(f"    {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--lease-seconds", type=float, default=None)
    arguments = parser.parse_args()
    raise SystemExit(asyncio.run(main(arguments.kills, arguments.workers, arguments.lease_seconds)))
