"""Many concurrent ``stream_run`` consumers in one process, on Redis (bus, BullMQ) and PostgreSQL.

    .venv/bin/python -m benchmarks.many_streams [--runs 100] [--streams-per-run 10] [--words 50]
        [--poll-interval 1.0] [--worker-loops 4] [--publish-directly]

Starts the runs, opens every stream and waits until all of them are live (subscribed, past their
backfill), then runs the worker (4 loops) and the outbox publisher in this process until the
last stream has ended. Reports the subscriber connections the server holds for the bus, the
memory per open stream (resident set growth while they opened, divided by their number), and
the events delivered per second to all streams together, from the worker's start to the last
stream's end (each event counts once per stream that received it). ``--publish-directly``
publishes the runs' events straight to the bus instead (no worker, nothing stored): what the
shared subscriber and ``stream_run``'s live path deliver when the worker is not the limit. Runs
in a throwaway namespace on AGENTS_RUN_TEST_REDIS_URL and AGENTS_RUN_TEST_POSTGRES_URL
(defaults: the local servers), removed afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
import uuid
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from pathlib import Path

from redis.asyncio import Redis

from agents_run import Infra, RunEvent, start_run, stream_run, use_infra
from agents_run.adapters.redis_bus import RedisEventBus
from agents_run.application.processes import serve_publisher, serve_worker
from agents_run.config import build_infra, create_namespace, isolated, read_config, remove_namespace
from benchmarks.measure import POSTGRES_URL, REDIS_URL

REDIS, POSTGRES = REDIS_URL, POSTGRES_URL  # the servers every benchmark uses


def resident_kib() -> int:
    gc.collect()
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status (Linux only)")


async def subscriber_connections(bus: RedisEventBus) -> int:
    client = Redis.from_url(bus.url)
    try:
        connections = await client.client_list()
    finally:
        await client.aclose()
    return sum(1 for c in connections if c["name"] == bus.client_name and "P" in c["flags"])


@dataclass(frozen=True)
class Load:
    runs: int
    streams_per_run: int
    words: int
    poll_interval: float
    worker_loops: int
    publish_directly: bool


async def measure(infra: Infra, load: Load) -> None:
    runs, streams_per_run, words = load.runs, load.streams_per_run, load.words
    poll, loops, direct = load.poll_interval, load.worker_loops, load.publish_directly
    bus = infra.bus
    assert isinstance(bus, RedisEventBus)
    text = " ".join(f"w{i}" for i in range(words))
    run_ids = [await start_run("echo", {"text": text}) for _ in range(runs)]
    delivered = 0

    async def consume(run_id: str) -> None:
        nonlocal delivered
        expected_seq = 1
        async for event in stream_run(run_id, idle_timeout=600, poll_interval=poll):
            if event.seq != expected_seq:
                raise AssertionError(f"{run_id}: seq {event.seq} where {expected_seq} was due")
            expected_seq += 1
            delivered += 1

    before = resident_kib()
    streams = [asyncio.create_task(consume(r)) for r in run_ids for _ in range(streams_per_run)]
    while len(bus.open_subscriptions()) < len(streams):  # noqa: ASYNC110 - no event to wait on
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)  # every stream past its (empty) backfill, waiting on the bus
    opened = resident_kib()
    connections = await subscriber_connections(bus)

    began = time.perf_counter()
    if direct:
        await publish_directly(bus, run_ids, words)
        await asyncio.gather(*streams)
    else:
        await work_until_streamed(streams, loops)
    elapsed = time.perf_counter() - began

    expected = len(streams) * (words + 2)
    print(
        f"{len(streams)} streams ({runs} runs x {streams_per_run}), {words + 2} events a run, "
        f"stream poll interval {poll:g}s, "
        + ("published directly" if direct else f"{loops} worker loops")
    )
    print(f"  subscriber connections held for the bus: {connections}")
    print(f"  memory per open stream: {(opened - before) / len(streams):.1f} KiB")
    print(f"  events delivered: {delivered:,} of {expected:,} in {elapsed:.2f}s")
    print(f"  delivered/s (all streams): {delivered / elapsed:,.0f}")
    source = "published directly" if direct else "stored by the worker"
    print(f"  events {source}/s (before fan-out): {runs * (words + 2) / elapsed:,.0f}")
    print(f"  buffers dropped by streams that fell behind: {bus.subscriber.fell_behind}")


async def work_until_streamed(streams: Sequence[Awaitable[object]], loops: int) -> None:
    draining, stop = asyncio.Event(), asyncio.Event()
    worker = asyncio.create_task(
        serve_worker(draining=draining, stop=stop, concurrency=loops, idle_poll=0.05)
    )
    publisher = asyncio.create_task(serve_publisher(stop=stop, idle_wait=0.05))
    await asyncio.gather(*streams)
    draining.set()
    stop.set()
    await asyncio.gather(worker, publisher)


async def publish_directly(bus: RedisEventBus, run_ids: list[str], words: int) -> None:
    """Each run's events, the runs interleaved as concurrent workers would publish them."""
    for seq in range(1, words + 3):
        kind = "RunStarted" if seq == 1 else "RunFinished" if seq == words + 2 else "RunStep"
        data = {"agent": "echo"} if seq == 1 else {"text": f"w{seq}"} if kind == "RunStep" else {}
        for run_id in run_ids:
            await bus.publish(RunEvent(run_id=run_id, seq=seq, type=kind, data=data))


async def main(load: Load) -> None:
    env = {
        "AGENTS_RUN_STORE_URL": POSTGRES,
        "AGENTS_RUN_BUS_URL": REDIS,
        "AGENTS_RUN_QUEUE_URL": REDIS,
    }
    config = isolated(read_config(env), f"bench_{uuid.uuid4().hex[:12]}")
    await create_namespace(config)
    infra = build_infra(config)
    try:
        with use_infra(infra):
            await measure(infra, load)
    finally:
        await infra.aclose()
        await remove_namespace(config)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--streams-per-run", type=int, default=10)
    parser.add_argument("--words", type=int, default=50)
    parser.add_argument("--poll-interval", type=float, default=1.0)
    parser.add_argument("--worker-loops", type=int, default=4)
    parser.add_argument("--publish-directly", action="store_true")
    args = parser.parse_args()
    asyncio.run(main(Load(**vars(args))))
