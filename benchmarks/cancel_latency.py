"""How long a cancel takes to interrupt a step in flight in another process, on Redis and
PostgreSQL.

    .venv/bin/python -m benchmarks.cancel_latency [--cancels 20]

Starts ``agents-run worker`` in a throwaway namespace on AGENTS_RUN_TEST_REDIS_URL and
AGENTS_RUN_TEST_POSTGRES_URL (defaults: the local servers), then, one run at a time: starts a run
whose second step is a 60 s call, waits until the first step is stored, calls ``cancel_run``,
and measures from its return until ``RunCancelled`` is stored (read every 2 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator

from agents_run import RunContext, cancel_run, register_agent, start_run, use_infra
from agents_run.config import (
    build_infra,
    config_env,
    create_namespace,
    isolated,
    read_config,
    remove_namespace,
)
from agents_run.domain.json_data import JsonObject
from benchmarks.measure import POSTGRES_URL, REDIS_URL

REDIS, POSTGRES = REDIS_URL, POSTGRES_URL  # the servers every benchmark uses
DEADLINE = 30.0


@register_agent("benchmark-long-step")
async def long_step(input: JsonObject, ctx: RunContext) -> AsyncIterator[JsonObject]:
    yield {"step": 1}
    yield {"step": await ctx.step("a 60 s LLM call", asyncio.sleep, 60, "never")}


async def measure(cancels: int) -> list[float]:
    config = isolated(
        read_config(
            {
                "AGENTS_RUN_BUS_URL": REDIS,
                "AGENTS_RUN_QUEUE_URL": REDIS,
                "AGENTS_RUN_STORE_URL": POSTGRES,
            }
        ),
        f"bench_cancel_{uuid.uuid4().hex[:8]}",
    )
    await create_namespace(config)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTS_RUN_")}
    worker = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "agents_run.entrypoints.cli", "worker"],
        *["--agents", "benchmarks.cancel_latency"],
        env=env | config_env(config),
    )
    infra = build_infra(config)
    latencies: list[float] = []
    try:
        with use_infra(infra):
            async with asyncio.timeout(DEADLINE * cancels):
                for _ in range(cancels):
                    run_id = await start_run("benchmark-long-step", {})
                    # Polling the store: the worker is another process.
                    while (await infra.store.get_run(run_id)).last_seq < 2:  # noqa: ASYNC110
                        await asyncio.sleep(0.01)
                    await asyncio.sleep(0.1)  # well inside the 60 s step
                    await cancel_run(run_id)
                    returned = time.perf_counter()
                    while not (await infra.store.get_run(run_id)).status.is_terminal:  # noqa: ASYNC110
                        await asyncio.sleep(0.002)
                    latencies.append(time.perf_counter() - returned)
                    events = await infra.store.read_events(run_id)
                    assert events[-1].type == "RunCancelled", events[-1]
    finally:
        worker.send_signal(signal.SIGTERM)
        await asyncio.wait_for(worker.wait(), 30)
        await infra.aclose()
        await remove_namespace(config)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cancels", type=int, default=20)
    args = parser.parse_args()
    latencies = sorted(asyncio.run(measure(args.cancels)))
    p99 = latencies[min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))]
    print(
        f"{len(latencies)} cancels, cancel_run returned -> RunCancelled stored: "
        f"p50 {statistics.median(latencies) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, "
        f"max {latencies[-1] * 1000:.1f} ms"
    )


if __name__ == "__main__":
    main()
