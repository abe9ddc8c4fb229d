"""Load: many runs executed by two worker and two publisher processes, streamed by many clients
at once (each run live from its start, some from a random ``from_seq``, some over HTTP through an
``agents-run serve`` process); afterwards every stream is compared with the store. Prints the
throughput and the delivery latencies (event made by the agent -> received by the client)."""

from __future__ import annotations

import asyncio
import random
import socket
import statistics
import time

import tests.faults.agents  # noqa: F401 - registers the agents here too, for start_run's check
from agents_run import RunEvent, start_run, stream_run, use_infra
from tests.faults.cluster import long_or_short, running_cluster, services_config_on, within
from tests.faults.histories import Streamed, check_against_store
from tests.integration.http_client import open_event_stream, request

RUNS = long_or_short(400, 40)
STEPS = long_or_short(20, 8)
DEADLINE = float(long_or_short(600, 120))  # for every client to have its whole stream
READ_DEADLINE = 60.0  # for one frame of an HTTP stream (keep-alives come more often)

Received = list[tuple[RunEvent, float]]  # each event with the wall-clock time it arrived


async def in_process_client(run_id: str, from_seq: int) -> Received:
    events = stream_run(run_id, from_seq, poll_interval=0.1, idle_timeout=DEADLINE)
    return [(event, time.time()) async for event in events]


async def http_client(port: int, run_id: str, from_seq: int) -> Received:
    received: Received = []
    async with open_event_stream(port, f"/runs/{run_id}/events?from_seq={from_seq}") as stream:
        assert stream.status == 200, stream.status
        while (frame := await stream.next_event(READ_DEADLINE)) is not None:
            assert frame.event != "StreamError", frame
            received.append((RunEvent.from_json(frame.json()), time.time()))
    return received


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def test_many_runs_and_clients_every_stream_matches_the_store() -> None:
    choose = random.Random(20261202)
    last_seq = STEPS + 2  # RunStarted, the steps, the terminal event
    async with running_cluster(services_config_on()) as (cluster, infra):
        for _ in range(2):
            cluster.worker("--concurrency", "8")
            cluster.publisher()
        port = free_port()
        cluster.start("serve", "--without-worker", "--port", str(port))

        async def serving() -> bool:
            try:
                return (await request(port, "GET", "/runs/no-such-run")).status == 404
            except OSError:
                return False

        await within(30.0, serving, "agents-run serve answers")
        with use_infra(infra):
            started = time.monotonic()
            clients: list[tuple[str, int, asyncio.Task[Received]]] = []

            def client(run_id: str, from_seq: int, over_http: bool) -> None:
                receiving = (
                    http_client(port, run_id, from_seq)
                    if over_http
                    else (in_process_client(run_id, from_seq))
                )
                clients.append((run_id, from_seq, asyncio.create_task(receiving)))

            for index in range(RUNS):
                run_id = await start_run("timed-steps", {"steps": STEPS, "pause": 0.02})
                client(run_id, 1, over_http=False)
                if index % 3 == 0:
                    client(run_id, choose.randint(1, last_seq), over_http=False)
                if index % 4 == 0:
                    client(run_id, 1, over_http=True)
                if index % 8 == 0:
                    client(run_id, choose.randint(1, last_seq), over_http=True)
            received = await asyncio.wait_for(
                asyncio.gather(*(task for _, _, task in clients)), DEADLINE
            )
            elapsed = time.monotonic() - started
            checked = await check_against_store(
                infra.store,
                [
                    Streamed(run_id, from_seq, [event for event, _ in events])
                    for (run_id, from_seq, _), events in zip(clients, received, strict=True)
                ],
            )
    assert checked.runs == RUNS
    assert checked.streams == len(clients)
    latencies = [
        arrived - float(event.data["at"])
        for events in received
        for event, arrived in events
        if event.type == "RunStep"
    ]
    print(
        f"\nload: {RUNS} runs x {STEPS} steps, 2 workers (concurrency 8), 2 publishers, "
        f"{len(clients)} clients ({sum(1 for _, f, _ in clients if f > 1)} from a later seq); "
        f"{checked}; {RUNS * last_seq / elapsed:.0f} events/s stored, "
        f"{checked.events / elapsed:.0f} events/s delivered in {elapsed:.1f} s; "
        f"latency (made -> received) p50 {statistics.median(latencies) * 1000:.0f} ms, "
        f"p99 {percentile(latencies, 0.99) * 1000:.0f} ms"
    )
