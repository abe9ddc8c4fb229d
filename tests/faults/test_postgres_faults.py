"""PostgreSQL faults under worker and publisher processes: their connections terminated again and
again, the network to the server made slow, then blackholed for longer than a stream's idle
timeout. Every run finishes, every stream matches the store, and a hung store holds no stream
past its deadline."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from functools import partial
from pathlib import Path

import pytest

import tests.faults.agents  # noqa: F401 - registers the agents here too, for start_run's check
from agents_run import Infra, InfraUnavailable, RunEvent, start_run, stream_run, use_infra
from agents_run.adapters.postgres_store import PostgresRunStore
from agents_run.errors import StreamIdleTimeout
from tests.faults.cluster import (
    LONG_FAULTS,
    assert_all_finished,
    long_or_short,
    running_cluster,
    services_config_on,
    terminal_types,
    within,
)
from tests.faults.histories import Streamed, check_against_store
from tests.postgres_server import terminate_connections
from tests.services import postgres_url
from tests.tcp_proxy import proxied

RECOVERY_BOUND = 60.0  # a fault lifted -> every run ended, on a loaded 2-core machine
LEASE = "2"


async def collect(run_id: str, from_seq: int = 1, idle_timeout: float = 60) -> list[RunEvent]:
    stream = stream_run(run_id, from_seq, poll_interval=0.1, idle_timeout=idle_timeout)
    return [event async for event in stream]


async def start_runs(log: Path, runs: int, steps: int, pause: float) -> list[str]:
    return [
        await start_run("counted-steps", {"steps": steps, "log": str(log), "pause": pause})
        for _ in range(runs)
    ]


async def all_stored_steps(infra: Infra, run_ids: list[str], at_least: int) -> bool:
    for run_id in run_ids:
        if len(await infra.store.read_events(run_id, 1 + at_least, limit=1)) == 0:
            return False
    return True


async def test_postgresql_connections_terminated_again_and_again_fail_no_run(
    tmp_path: Path,
) -> None:
    terminations = long_or_short(20, 2)
    async with running_cluster(services_config_on()) as (cluster, infra):
        assert isinstance(infra.store, PostgresRunStore)
        name = infra.store.application_name  # agents-run:<this test's schema>: ours only
        cluster.worker("--concurrency", "3", "--lease-seconds", LEASE)
        cluster.publisher()
        with use_infra(infra):
            run_ids = await start_runs(tmp_path / "log", 3, steps=2 * terminations + 2, pause=0.05)
            streams = [asyncio.create_task(collect(run_id)) for run_id in run_ids]
            recoveries = []
            for step in range(terminations):
                await within(RECOVERY_BOUND, partial(all_stored_steps, infra, run_ids, step), "")
                before = await total_events(infra, run_ids)
                ended = await terminate_connections(name)
                assert ended >= 1, "no connection of the cluster to terminate"
                recoveries.append(
                    await within(
                        RECOVERY_BOUND,
                        partial(grew, infra, run_ids, before),
                        "no event appended after terminating the connections",
                    )
                )
            streamed = await asyncio.wait_for(asyncio.gather(*streams), RECOVERY_BOUND)
            checked = await check_against_store(
                infra.store, [Streamed(r, 1, e) for r, e in zip(run_ids, streamed, strict=True)]
            )
            await assert_all_finished(infra, run_ids)
    print(f"\npg terminate x{terminations}: {checked}; recovery max {max(recoveries):.2f} s")


async def total_events(infra: Infra, run_ids: list[str]) -> int:
    return sum([len(await infra.store.read_events(run_id)) for run_id in run_ids])


async def grew(infra: Infra, run_ids: list[str], before: int) -> bool:
    """More events than ``before``: the runs make progress again (or they all ended)."""
    try:
        total = await total_events(infra, run_ids)
        return total > before or None not in await terminal_types(infra, run_ids)
    except InfraUnavailable:
        return False  # our own connections were terminated too


@pytest.mark.skipif(not LONG_FAULTS, reason="long form only (AGENTS_RUN_LONG_FAULTS=1): ~12 s")
async def test_a_slow_postgresql_slows_runs_down_but_they_finish_and_streams_are_complete(
    tmp_path: Path,
) -> None:
    async with proxied(postgres_url()) as (proxy, slow_url):
        config = services_config_on(store_url=slow_url)
        async with running_cluster(config) as (cluster, infra):
            cluster.worker()
            cluster.publisher()
            with use_infra(infra):
                run_ids = await start_runs(tmp_path / "log", 1, steps=long_or_short(8, 3), pause=0)
                streams = [asyncio.create_task(collect(run_id)) for run_id in run_ids]
                proxy.latency = 0.05  # per chunk, each way: a round trip costs 100 ms or more
                await within(RECOVERY_BOUND, lambda: all_stored_steps(infra, run_ids, 1), "")
                proxy.latency = 0.2  # for one step (each call costs 400 ms or more)
                await within(RECOVERY_BOUND, lambda: all_stored_steps(infra, run_ids, 2), "")
                proxy.latency = 0.05
                streamed = await asyncio.wait_for(asyncio.gather(*streams), RECOVERY_BOUND)
                proxy.latency = 0
                checked = await check_against_store(
                    infra.store,
                    [Streamed(r, 1, e) for r, e in zip(run_ids, streamed, strict=True)],
                )
                await assert_all_finished(infra, run_ids)
    print(f"\npg latency 50-200 ms: {checked}")


STREAM_IDLE_TIMEOUT = 1.0
BLACKHOLE = 4.0  # seconds: longer than the streams' idle timeout, shorter than the outage bound


async def test_a_blackholed_postgresql_holds_no_stream_past_its_deadline_and_runs_go_on_after(
    tmp_path: Path,
) -> None:
    async with proxied(postgres_url()) as (proxy, dead_url):
        # A 1 s connect timeout: each call waits 2 s at most for its reply.
        config = dataclasses.replace(services_config_on(store_url=dead_url), connect_timeout=1.0)
        async with running_cluster(config) as (cluster, infra):
            cluster.worker("--concurrency", "3", "--lease-seconds", LEASE)
            cluster.publisher()
            with use_infra(infra):
                run_ids = await start_runs(tmp_path / "log", 3, steps=8, pause=0.2)
                streamed: dict[str, list[RunEvent]] = {run_id: [] for run_id in run_ids}

                async def stream_until_it_gives_up(run_id: str) -> BaseException | None:
                    stream = stream_run(run_id, poll_interval=0.1, idle_timeout=STREAM_IDLE_TIMEOUT)
                    try:
                        async for event in stream:
                            streamed[run_id].append(event)
                    except (InfraUnavailable, StreamIdleTimeout) as error:
                        return error
                    return None

                # Streams start once the runs go (a 1 s idle timeout outlasts no process start).
                await within(RECOVERY_BOUND, lambda: all_stored_steps(infra, run_ids, 1), "")
                streams = [asyncio.create_task(stream_until_it_gives_up(r)) for r in run_ids]
                await within(RECOVERY_BOUND, lambda: all_stored_steps(infra, run_ids, 3), "")
                proxy.blackhole = True
                blackholed_at = time.monotonic()
                # Every stream gives up while the store is still dead: none is held past its
                # idle timeout (plus room for a loaded machine) by a store that never answers.
                outcomes = await asyncio.wait_for(asyncio.gather(*streams), BLACKHOLE - 0.2)
                held_for = time.monotonic() - blackholed_at
                await asyncio.sleep(max(BLACKHOLE - held_for, 0))
                proxy.blackhole = False
                lifted_at = time.monotonic()
                assert all(isinstance(o, InfraUnavailable | StreamIdleTimeout) for o in outcomes)

                async def ended() -> bool:
                    try:
                        types = await terminal_types(infra, run_ids)
                    except InfraUnavailable:
                        return False
                    return None not in types

                recovery = await within(RECOVERY_BOUND, ended, "runs ended after the blackhole")
                # The outage (4 s) is within the workers' 30 s bound: every run finishes.
                await assert_all_finished(infra, run_ids)
                # Each client reconnects from the seq after the last one it received.
                for run_id in run_ids:
                    streamed[run_id] += await collect(run_id, len(streamed[run_id]) + 1)
                checked = await check_against_store(
                    infra.store, [Streamed(r, 1, e) for r, e in streamed.items()]
                )
                after_lift = time.monotonic() - lifted_at
    print(
        f"\npg blackhole {BLACKHOLE:g} s: streams gave up {held_for:.2f} s after it began "
        f"(idle timeout {STREAM_IDLE_TIMEOUT:g} s); runs ended {recovery:.2f} s after it lifted "
        f"({after_lift:.2f} s with the reconnected streams); {checked}"
    )
