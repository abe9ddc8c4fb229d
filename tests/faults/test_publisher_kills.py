"""Outbox publisher processes SIGKILLed again and again between publishing rows and marking
them, while runs append: the outbox still drains, and every stream (live from seq 1, or from a
random seq, opened at a random moment) gets every event once, in order, the republished ones
deduplicated.

The window is made wide and the kill lands in it every time: the publishers reach PostgreSQL
through a proxy that delays each packet (``LATENCY``), so marking a claim takes tens of ms after
its rows reached the bus, while the test kills a publisher within a millisecond or so of seeing
its n-th event there (n random)."""

from __future__ import annotations

import asyncio
import collections
import random
import time
from pathlib import Path

import tests.faults.agents  # noqa: F401 - registers the agents here too, for start_run's check
from agents_run import Infra, use_infra
from agents_run.adapters.redis_bus import RedisSubscription
from tests.faults.cluster import long_or_short, running_cluster, services_config_on, within
from tests.faults.histories import check_against_store
from tests.faults.streams import RunStreams, start_run_streams
from tests.tcp_proxy import proxied

DRAIN_BOUND = 60.0  # the last publisher's start -> outbox empty, on a loaded 2-core machine
PUBLISH_BOUND = 30.0  # a publisher process's start -> its n-th event on the bus
LATENCY = 0.02  # seconds added to each packet between the killed publishers and PostgreSQL


class BusWatch:
    """Every event the bus carries for some runs, as a plain subscriber sees it: how many went
    out in all, and how many seqs went out again (republished rows)."""

    def __init__(self) -> None:
        self.seen: collections.Counter[tuple[str, int]] = collections.Counter()
        self.total = 0
        self._arrived = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def watch(self, infra: Infra, run_id: str) -> None:
        subscription = await infra.bus.subscribe(run_id)
        assert isinstance(subscription, RedisSubscription)
        self._tasks.append(asyncio.create_task(self._watch(subscription)))

    async def _watch(self, subscription: RedisSubscription) -> None:
        while not subscription.closed:  # closed with the infra, where the test failed
            event = await subscription.next_event(timeout=1.0)
            if event is not None:
                self.seen[(event.run_id, event.seq)] += 1
                self.total += 1
                self._arrived.set()

    async def until_total(self, total: int) -> None:
        while self.total < total:
            self._arrived.clear()
            await self._arrived.wait()

    @property
    def republished(self) -> int:
        return sum(count - 1 for count in self.seen.values())

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def marked_rows(infra: Infra, run_ids: list[str]) -> int:
    """Rows of ``run_ids`` published and marked so (a low estimate while runs append)."""
    appended = sum([len(await infra.store.read_events(run_id)) for run_id in run_ids])
    return appended - await infra.store.count_pending_outbox()


async def test_publishers_killed_between_publishing_and_marking_still_drain_the_outbox(
    tmp_path: Path,
) -> None:
    kills = long_or_short(40, 4)
    choose = random.Random(kills)
    log = str(tmp_path / "executions.log")
    config = services_config_on()
    async with (
        proxied(config.store_url) as (slow_store, slow_store_url),
        running_cluster(config) as (cluster, infra),
    ):
        slow_store.latency = LATENCY
        cluster.worker("--concurrency", "4")
        with use_infra(infra):
            steps = long_or_short(300, 40)
            runs: list[RunStreams] = [
                await start_run_streams(
                    "counted-steps", {"steps": steps, "log": log, "pause": 0.05}
                )
                for _ in range(4)
            ]
            run_ids = [run.run_id for run in runs]
            watch = BusWatch()
            for run_id in run_ids:
                await watch.watch(infra, run_id)
            marked_before = await marked_rows(infra, run_ids)
            killed_at: list[int] = []
            for kill in range(kills):
                publisher = cluster.publisher(env={"AGENTS_RUN_STORE_URL": slow_store_url})
                killed_at.append(choose.randint(1, 40))
                await asyncio.wait_for(
                    watch.until_total(watch.total + killed_at[-1]), PUBLISH_BOUND
                )
                cluster.kill(publisher)  # its claim in hand is published, not yet marked
                if kill % 2:
                    await choose.choice(runs).stream_from(choose.randint(1, 30))
            marked_by_killed = await marked_rows(infra, run_ids) - marked_before
            republished_by_kills = watch.republished

            cluster.publisher()
            restarted = time.monotonic()

            async def drained() -> bool:
                ended = [(await infra.store.get_run(r)).status.is_terminal for r in run_ids]
                return all(ended) and await infra.store.count_pending_outbox() == 0

            drain_seconds = await within(DRAIN_BOUND, drained, "every run ended, outbox empty")
            streams = await asyncio.wait_for(
                asyncio.gather(*(run.collected() for run in runs)), DRAIN_BOUND
            )
            streamed_seconds = time.monotonic() - restarted
            await watch.stop()
            checked = await check_against_store(
                infra.store, [stream for per_run in streams for stream in per_run]
            )
    print(
        f"\n{kills} publisher kills, each after its n-th event on the bus (n in {killed_at}): "
        f"{republished_by_kills} rows republished, {marked_by_killed} rows marked by the killed "
        f"publishers; {checked}; runs ended and outbox drained {drain_seconds:.1f} s, streams "
        f"complete {streamed_seconds:.1f} s after the last publisher's start"
    )
    # Each killed publisher left marked about half of what it published (claims of 1, 2, 4...).
    assert marked_by_killed >= sum(killed_at) // 4, (marked_by_killed, killed_at)
    assert republished_by_kills >= 1  # the kills did land between publishing and marking
