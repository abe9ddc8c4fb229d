"""The HTTP API while other work runs at once: live tails, quiet streams that outlive stream_run's
idle timeout, ``serve`` with its in-process worker, shutdown with a grace period, and signals.

Not marked deterministic, unlike the other integration tests: how the server's streams interleave
with the worker and the publisher (and how often a quiet stream resubscribes) is up to the
scheduler here, and that is what these tests exercise.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agents_run import (
    Infra,
    register_agent,
    run_until_idle,
    run_worker_once,
    start_run,
)
from agents_run.application.outbox_publisher import publish_pending_outbox_events_once
from agents_run.domain.json_data import JsonObject
from agents_run.http import HttpLimits, create_app
from agents_run.http.serving import RunningServer, running_server
from tests.integration.http_client import (
    DEADLINE,
    open_event_stream,
    request,
)
from tests.integration.serving import eventually, serving_in_process


async def test_backfill_then_live_tail_then_resume_with_last_event_id(
    server: RunningServer, infra: Infra
) -> None:
    halfway, resume = asyncio.Event(), asyncio.Event()

    @register_agent("pauses-halfway")
    async def agent(input: JsonObject) -> AsyncIterator[JsonObject]:
        yield {"text": "one"}
        halfway.set()
        await resume.wait()
        yield {"text": "two"}
        yield {"text": "three"}

    response = await request(server.port, "POST", "/runs", json_body={"agent": "pauses-halfway"})
    run_id = response.json()["run_id"]
    worker = asyncio.create_task(run_worker_once())
    await asyncio.wait_for(halfway.wait(), DEADLINE)
    await publish_pending_outbox_events_once()
    path = f"/runs/{run_id}/events"
    async with open_event_stream(server.port, path) as stream:
        backfill = [await stream.next_event(), await stream.next_event()]
        assert [(f.id, f.event) for f in backfill if f] == [
            ("1", "RunStarted"),
            ("2", "RunStep"),
        ]
        resume.set()  # from here on the worker appends and the publisher publishes live
        publisher = asyncio.create_task(publish_until_idle(worker))
        live = await stream.next_event()
        assert live is not None
        assert (live.id, live.event, live.json()["data"]) == ("3", "RunStep", {"text": "two"})
    # The client drops the connection after seq 3 and reconnects the way EventSource does.
    async with open_event_stream(server.port, path, {"Last-Event-ID": "3"}) as stream:
        rest = await stream.events_to_the_end()
    assert [(f.id, f.event) for f in rest] == [("4", "RunStep"), ("5", "RunFinished")]
    await asyncio.wait_for(publisher, DEADLINE)


async def publish_until_idle(worker: asyncio.Task[bool]) -> None:
    while not worker.done():
        await publish_pending_outbox_events_once()
        await asyncio.sleep(0.01)
    await worker
    await publish_pending_outbox_events_once()


async def test_a_quiet_stream_gets_keepalives_and_outlives_stream_run_idle_timeout(
    infra: Infra, caplog: pytest.LogCaptureFixture
) -> None:
    limits = HttpLimits(keepalive_interval=0.02, poll_interval=0.01, resubscribe_after=0.05)
    app = create_app(infra, limits=limits, allow_guessable_ids=True)
    async with running_server(app, "127.0.0.1", 0, limits) as quiet_server:
        run_id = await start_run("echo", {"text": "late"})
        resubscribed = "subscribing afresh"
        with caplog.at_level(logging.DEBUG, logger="agents_run.http"):
            async with open_event_stream(quiet_server.port, f"/runs/{run_id}/events") as stream:
                first = await stream.next_frame()
                assert first is not None
                assert (first.event, first.comments) == (None, ["keep-alive"])

                async def resubscribed_twice() -> bool:
                    await stream.next_frame()
                    return caplog.text.count(resubscribed) >= 2

                await eventually(resubscribed_twice, "the stream resubscribed after idling")
                await run_until_idle()  # a worker comes along at last
                events = await stream.events_to_the_end()
    assert [f.event for f in events] == ["RunStarted", "RunStep", "RunFinished"]


async def test_serve_with_an_in_process_worker_runs_what_it_is_given(infra: Infra) -> None:
    stop = asyncio.Event()
    serving, port, said = await serving_in_process(stop, grace=DEADLINE)
    response = await request(port, "POST", "/runs", json_body={"agent": "echo", "input": {}})
    async with open_event_stream(port, f"/runs/{response.json()['run_id']}/events") as stream:
        events = await stream.events_to_the_end()
    assert [frame.event for frame in events] == ["RunStarted", "RunFinished"]
    stop.set()
    assert await asyncio.wait_for(serving, DEADLINE) == 0
    assert said == [
        f"agents-run serve: listening on http://127.0.0.1:{port} "
        "(with in-process worker, concurrency 1)",
        "agents-run serve: shutting down",
    ]
    assert (await infra.queue.counts()).total == 0
    assert await infra.store.pending_outbox() == []


async def test_on_shutdown_a_run_in_progress_may_end_within_the_grace_period(
    infra: Infra,
) -> None:
    stop, started, release = asyncio.Event(), asyncio.Event(), asyncio.Event()

    @register_agent("ends-when-released")
    async def agent(input: JsonObject) -> AsyncIterator[JsonObject]:
        started.set()
        await release.wait()
        yield {"step": 1}

    serving, port, _ = await serving_in_process(stop, grace=DEADLINE * 10)
    response = await request(port, "POST", "/runs", json_body={"agent": "ends-when-released"})
    await asyncio.wait_for(started.wait(), DEADLINE)
    stop.set()
    release.set()  # after the shutdown began: the grace period lets the run finish
    assert await asyncio.wait_for(serving, DEADLINE) == 0
    events = await infra.store.read_events(response.json()["run_id"])
    assert [event.type for event in events] == ["RunStarted", "RunStep", "RunFinished"]
    assert await infra.store.pending_outbox() == []


async def test_on_shutdown_a_run_that_outlives_the_grace_period_stops_at_its_next_step(
    infra: Infra,
) -> None:
    stop, started = asyncio.Event(), asyncio.Event()

    @register_agent("never-ends")
    async def agent(input: JsonObject) -> AsyncIterator[JsonObject]:
        started.set()
        while True:
            yield {}
            await asyncio.sleep(0.01)

    serving, port, _ = await serving_in_process(stop, grace=0)
    response = await request(port, "POST", "/runs", json_body={"agent": "never-ends"})
    await asyncio.wait_for(started.wait(), DEADLINE)
    stop.set()
    assert await asyncio.wait_for(serving, DEADLINE) == 0
    last = (await infra.store.read_events(response.json()["run_id"]))[-1]
    assert (last.type, last.data["error_type"]) == ("RunFailed", "WorkerShutdown")
    assert await infra.store.pending_outbox() == []


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
async def test_the_serve_command_serves_then_stops_cleanly_on_a_signal(
    stop_signal: signal.Signals,
) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("AGENTS_RUN_")}
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).with_name("agents-run")),
        "serve",
        "--port",
        "0",
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        first_line = await asyncio.wait_for(process.stdout.readline(), DEADLINE * 2)
        found = re.search(
            rb"listening on http://127\.0\.0\.1:(\d+) \(with in-process worker, concurrency 4\)",
            first_line,
        )
        assert found, first_line
        port = int(found[1])
        response = await request(
            port, "POST", "/runs", json_body={"agent": "echo", "input": {"text": "x"}}
        )
        async with open_event_stream(port, f"/runs/{response.json()['run_id']}/events") as stream:
            events = await stream.events_to_the_end()
        assert [frame.event for frame in events] == ["RunStarted", "RunStep", "RunFinished"]
        process.send_signal(stop_signal)
        stdout, stderr = await asyncio.wait_for(process.communicate(), DEADLINE * 2)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, stderr
    assert stdout == b"agents-run serve: shutting down\n"
    assert b"POST /runs -> 201" in stderr


@pytest.mark.agents_run_memory_only(
    reason="the write deadline is the HTTP layer's; 20 MB of events take minutes on PostgreSQL"
)
async def test_a_client_that_stops_reading_is_disconnected_after_the_write_timeout(
    infra: Infra,
) -> None:
    limits = HttpLimits(write_timeout=0.2, keepalive_interval=0.05)

    @register_agent("floods")
    async def agent(input: JsonObject) -> AsyncIterator[JsonObject]:
        for _ in range(2_000):
            yield {"text": "x" * 10_000}  # 20 MB of events, each under the payload limit

    run_id = await start_run("floods", {})
    await run_until_idle()
    app = create_app(infra, limits=limits, allow_guessable_ids=True)
    async with running_server(app, "127.0.0.1", 0, limits) as running:
        _, writer = await asyncio.open_connection("127.0.0.1", running.port)
        try:
            writer.write(f"GET /runs/{run_id}/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            await writer.drain()  # and never read what comes back

            async def disconnected() -> bool:
                return running.open_connections == 0

            await eventually(disconnected, "the server dropped the client that stopped reading")
        finally:
            writer.close()
