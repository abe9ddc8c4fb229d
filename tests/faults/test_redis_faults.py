"""Redis restarted (without persistence) and its connections cut while clients stream: the bus
and the queue on a ``redis-server`` of the test's own, the store on the test PostgreSQL, worker
and publisher processes, streams in the test's process. Every run finishes, every stream
matches the store, and the recovery is bounded."""

from __future__ import annotations

import asyncio
import collections
import random
import time
from pathlib import Path

import tests.faults.agents  # noqa: F401 - registers the agents here too, for start_run's check
from agents_run import Infra, use_infra
from tests.faults.cluster import long_or_short, running_cluster, services_config_on, within
from tests.faults.histories import Checked, check_against_store
from tests.faults.streams import RunStreams, start_run_streams
from tests.redis_server import own_redis_server
from tests.services import kill_redis_connections

RECOVERY_BOUND = 60.0  # the fault -> every run ended, on a loaded 2-core machine
STEPS = 12


async def all_ended(infra: Infra, run_ids: list[str]) -> bool:
    return all([(await infra.store.get_run(run_id)).status.is_terminal for run_id in run_ids])


async def events_stored(infra: Infra, run_id: str) -> int:
    return len(await infra.store.read_events(run_id))


async def finish_and_check(
    infra: Infra, runs: list[RunStreams], since: float
) -> tuple[Checked, float, float]:
    """Wait for every run to end and every stream to complete; the check, the seconds from
    ``since`` until the runs ended, and until the streams did."""
    run_ids = [run.run_id for run in runs]
    await within(RECOVERY_BOUND, lambda: all_ended(infra, run_ids), "every run ended")
    ended = time.monotonic() - since
    streams = await asyncio.wait_for(
        asyncio.gather(*(run.collected() for run in runs)), RECOVERY_BOUND
    )
    streamed = time.monotonic() - since
    checked = await check_against_store(infra.store, [s for per_run in streams for s in per_run])
    for run_id in run_ids:
        (last,) = await infra.store.read_events(run_id, await events_stored(infra, run_id), limit=1)
        assert last.type == "RunFinished", last
    return checked, ended, streamed


async def cut_connections(url: str, prefix: str, cut: collections.Counter[str]) -> None:
    """CLIENT KILL of the namespace's connections: the streams' shared Pub/Sub one, and the
    plain ones of the publisher, the workers and this process."""
    cut["bus subscriber"] += await kill_redis_connections(url, f"{prefix}:bus", pubsub=True)
    cut["bus"] += await kill_redis_connections(url, f"{prefix}:bus", pubsub=False)
    cut["queue"] += await kill_redis_connections(url, f"{prefix}:queue", pubsub=False)


async def test_redis_restarted_and_its_connections_cut_while_clients_stream(
    tmp_path: Path,
) -> None:
    rounds, restarts = long_or_short(30, 3), long_or_short(5, 1)
    choose = random.Random(rounds)
    log = str(tmp_path / "executions.log")
    cut: collections.Counter[str] = collections.Counter()
    async with own_redis_server() as redis_server:
        config = services_config_on(bus_and_queue_url=redis_server.url)
        async with running_cluster(config) as (cluster, infra):
            cluster.worker("--concurrency", "2")
            cluster.publisher()
            with use_infra(infra):
                # Connections cut again and again while two runs stream.
                steps = long_or_short(100, 15)
                runs = [
                    await start_run_streams(
                        "counted-steps", {"steps": steps, "log": log, "pause": 0.1}
                    )
                    for _ in range(2)
                ]
                for _ in range(rounds):
                    await asyncio.sleep(choose.uniform(0.2, 0.6))
                    await cut_connections(redis_server.url, config.key_prefix, cut)
                    await choose.choice(runs).stream_from(choose.randint(1, steps))
                cuts = await finish_and_check(infra, runs, time.monotonic())

                # Redis restarted (every key lost) with two runs running and two queued.
                restarted_runs: list[RunStreams] = []
                for _ in range(restarts):
                    batch = [
                        await start_run_streams(
                            "counted-steps", {"steps": STEPS, "log": log, "pause": 0.1}
                        )
                        for _ in range(4)
                    ]
                    restarted_runs += batch

                    async def two_running(batch: list[RunStreams] = batch) -> bool:
                        counts = [await events_stored(infra, run.run_id) for run in batch]
                        return sum(count >= 3 for count in counts) >= 2

                    await within(RECOVERY_BOUND, two_running, "two runs are running")
                    await redis_server.restart()
                    restarted = time.monotonic()
                    await choose.choice(batch).stream_from(choose.randint(1, STEPS))
                    restart = await finish_and_check(infra, batch, restarted)
    print(
        f"\n{rounds} rounds of CLIENT KILL ({dict(cut)} connections cut), 2 runs: {cuts[0]}; "
        f"every run ended {cuts[1]:.1f} s and every stream complete {cuts[2]:.1f} s after the "
        f"last cut.\n{restarts} Redis restarts, each with 2 runs running and 2 queued: the last "
        f"one's {restart[0]}; every run ended {restart[1]:.1f} s and every stream complete "
        f"{restart[2]:.1f} s after it"
    )
    # Most rounds cut the streams' subscriber; one that comes while it is still reconnecting
    # from the last cut (it retries within 1 s) finds nothing of it to cut.
    assert cut["bus subscriber"] >= max(1, rounds // 2), cut
