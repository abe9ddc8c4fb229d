"""The HTTP API of ``agents-run serve``: a real server on a free port, a real HTTP client."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from agents_run import (
    Infra,
    InfraUnavailable,
    RunEvent,
    register_agent,
    run_until_idle,
    run_worker_once,
    start_run,
)
from agents_run.adapters.memory import InMemoryEventBus
from agents_run.application.agents import unregister_agent
from agents_run.application.outbox_publisher import publish_pending_outbox_events_once
from agents_run.domain.json_data import JsonObject
from agents_run.server import HttpApiServer, ServerLimits, serve
from tests.integration.http_client import (
    DEADLINE,
    open_event_stream,
    request,
)

LIMITS = ServerLimits(
    max_body_bytes=4096,
    request_timeout=DEADLINE,
    keepalive_interval=0.05,
    poll_interval=0.05,
    shutdown_timeout=DEADLINE,
)


@pytest.fixture
async def server(infra: Infra) -> AsyncIterator[HttpApiServer]:
    async with HttpApiServer("127.0.0.1", 0, LIMITS) as running:
        yield running
    await run_until_idle()  # leave no job or outbox row behind


async def eventually(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    async def poll() -> None:
        while not await condition():  # noqa: ASYNC110 - what is polled offers no event
            await asyncio.sleep(0.01)

    try:
        await asyncio.wait_for(poll(), DEADLINE)
    except TimeoutError:
        pytest.fail(f"still not true after {DEADLINE}s: {what}")


def open_subscriptions(infra: Infra) -> list[str]:
    assert isinstance(infra.bus, InMemoryEventBus)
    return infra.bus.open_subscriptions()


async def started_run(server: HttpApiServer, text: str = "a b") -> str:
    response = await request(
        server.port, "POST", "/runs", json_body={"agent": "echo", "input": {"text": text}}
    )
    assert response.status == 201, response
    run_id: str = response.json()["run_id"]
    return run_id


async def finished_run(server: HttpApiServer, text: str = "a b") -> str:
    run_id = await started_run(server, text)
    await run_until_idle()
    return run_id


# POST /runs


async def test_post_runs_persists_and_enqueues_a_run_and_answers_201(
    server: HttpApiServer, infra: Infra
) -> None:
    response = await request(
        server.port, "POST", "/runs", json_body={"agent": "echo", "input": {"text": "hi"}}
    )
    assert response.status == 201
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    assert response.headers["connection"] == "close"
    run_id = response.json()["run_id"]
    assert response.headers["location"] == f"/runs/{run_id}"
    run = await infra.store.get_run(run_id)
    assert (run.agent, run.input, run.status) == ("echo", {"text": "hi"}, "queued")
    assert (await infra.queue.counts()).waiting == 1


async def test_input_may_be_left_out_and_means_an_empty_object(
    server: HttpApiServer, infra: Infra
) -> None:
    response = await request(server.port, "POST", "/runs", json_body={"agent": "echo"})
    assert response.status == 201
    assert (await infra.store.get_run(response.json()["run_id"])).input == {}


async def test_a_client_that_expects_100_continue_gets_it_before_sending_the_body(
    server: HttpApiServer,
) -> None:
    body = b'{"agent": "echo"}'
    head = (
        "POST /runs HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: 100-continue\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(head)
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), DEADLINE)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(body)
        final = await asyncio.wait_for(reader.read(), DEADLINE)
    finally:
        writer.close()
        await writer.wait_closed()
    assert final.startswith(b"HTTP/1.1 201 Created\r\n")


@pytest.mark.parametrize(
    ("body", "status", "error_type", "message"),
    [
        (b"{not json", 400, "MalformedRequest", "the body is not JSON"),
        (b"\xff\xfe", 400, "MalformedRequest", "the body is not JSON"),
        (b"", 400, "MalformedRequest", "the body is not JSON"),
        (b'["echo"]', 400, "MalformedRequest", "the body is a JSON list"),
        (b'{"input": {}}', 400, "MalformedRequest", '"agent" must be a string'),
        (b'{"agent": 7}', 400, "MalformedRequest", '"agent" must be a string'),
        (b'{"agent": "echo", "input": [1]}', 400, "MalformedRequest", '"input" must be'),
        (b'{"agent": "echo", "inputs": {}}', 400, "MalformedRequest", "unknown field(s) 'inputs'"),
        (b'{"agent": "no-such-agent"}', 422, "UnknownAgent", "unknown agent 'no-such-agent'"),
        (b'{"agent": " "}', 422, "InvalidArgument", "agent name must be a non-empty string"),
        (b'{"agent": "echo", "input": {"x": NaN}}', 422, "InvalidArgument", "no NaN"),
    ],
)
async def test_a_bad_start_request_is_refused_and_nothing_is_persisted(
    server: HttpApiServer,
    infra: Infra,
    *,
    body: bytes,
    status: int,
    error_type: str,
    message: str,
) -> None:
    response = await request(server.port, "POST", "/runs", body=body)
    assert response.status == status
    assert response.error[0] == error_type
    assert message in response.error[1]
    assert (await infra.queue.counts()).total == 0


# GET /runs/{run_id}


async def test_get_run_describes_it(server: HttpApiServer) -> None:
    run_id = await finished_run(server, "a b c")
    response = await request(server.port, "GET", f"/runs/{run_id}")
    assert response.status == 200
    assert response.json() == {
        "id": run_id,
        "agent": "echo",
        "status": "finished",
        "last_seq": 5,
        "cancel_requested": False,
    }


# POST /runs/{run_id}/cancel


async def test_cancel_requests_once_then_answers_false(server: HttpApiServer) -> None:
    run_id = await started_run(server)
    first = await request(server.port, "POST", f"/runs/{run_id}/cancel")
    again = await request(server.port, "POST", f"/runs/{run_id}/cancel")
    assert (first.status, first.json()) == (200, {"cancel_requested": True})
    assert (again.status, again.json()) == (200, {"cancel_requested": False})
    described = (await request(server.port, "GET", f"/runs/{run_id}")).json()
    assert (described["status"], described["cancel_requested"]) == ("cancelled", True)
    async with open_event_stream(server.port, f"/runs/{run_id}/events") as stream:
        events = await stream.events_to_the_end()
    assert [(frame.id, frame.event) for frame in events] == [("1", "RunCancelled")]


# GET /runs/{run_id}/events


async def test_events_of_a_finished_run_stream_whole_then_the_stream_closes(
    server: HttpApiServer, infra: Infra
) -> None:
    run_id = await finished_run(server, "a b")
    async with open_event_stream(server.port, f"/runs/{run_id}/events") as stream:
        assert stream.status == 200
        assert stream.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert stream.headers["cache-control"] == "no-cache"
        events = await stream.events_to_the_end()
    stored = await infra.store.read_events(run_id)
    assert [(frame.id, frame.event, frame.json()) for frame in events] == [
        (str(event.seq), event.type, event.to_json()) for event in stored
    ]
    assert [frame.event for frame in events] == ["RunStarted", "RunStep", "RunStep", "RunFinished"]
    assert RunEvent.from_json(events[1].json()) == stored[1]
    assert open_subscriptions(infra) == []


async def test_from_seq_starts_the_stream_there(server: HttpApiServer) -> None:
    run_id = await finished_run(server, "a b")
    async with open_event_stream(server.port, f"/runs/{run_id}/events?from_seq=3") as stream:
        events = await stream.events_to_the_end()
    assert [(frame.id, frame.event) for frame in events] == [("3", "RunStep"), ("4", "RunFinished")]


async def test_last_event_id_resumes_after_it_and_wins_over_from_seq(
    server: HttpApiServer,
) -> None:
    run_id = await finished_run(server, "a b")
    async with open_event_stream(
        server.port, f"/runs/{run_id}/events?from_seq=1", headers={"Last-Event-ID": "2"}
    ) as stream:
        events = await stream.events_to_the_end()
    assert [frame.id for frame in events] == ["3", "4"]


@pytest.mark.parametrize("resume", ["?from_seq=5", "?from_seq=99", "#Last-Event-ID: 4"])
async def test_past_the_end_of_a_finished_run_answers_204_so_event_source_stops(
    server: HttpApiServer, resume: str
) -> None:
    run_id = await finished_run(server, "a b")
    query, headers = resume, {}
    if resume.startswith("#"):
        name, _, value = resume[1:].partition(": ")
        query, headers = "", {name: value}
    response = await request(server.port, "GET", f"/runs/{run_id}/events{query}", headers=headers)
    assert (response.status, response.body) == (204, b"")


async def test_backfill_then_live_tail_then_resume_with_last_event_id(
    server: HttpApiServer, infra: Infra
) -> None:
    halfway, resume = asyncio.Event(), asyncio.Event()

    @register_agent("pauses-halfway")
    async def agent(input: JsonObject) -> AsyncIterator[JsonObject]:
        yield {"text": "one"}
        halfway.set()
        await resume.wait()
        yield {"text": "two"}
        yield {"text": "three"}

    try:
        response = await request(
            server.port, "POST", "/runs", json_body={"agent": "pauses-halfway"}
        )
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
    finally:
        unregister_agent("pauses-halfway")


async def publish_until_idle(worker: asyncio.Task[bool]) -> None:
    while not worker.done():
        await publish_pending_outbox_events_once()
        await asyncio.sleep(0.01)
    await worker
    await publish_pending_outbox_events_once()


async def test_a_quiet_stream_gets_keepalives_and_outlives_stream_run_idle_timeout(
    infra: Infra, caplog: pytest.LogCaptureFixture
) -> None:
    limits = ServerLimits(keepalive_interval=0.02, poll_interval=0.01, resubscribe_after=0.05)
    async with HttpApiServer("127.0.0.1", 0, limits) as quiet_server:
        run_id = await start_run("echo", {"text": "late"})
        resubscribed = "subscribing afresh"
        with caplog.at_level(logging.DEBUG, logger="agents_run.server"):
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


@pytest.mark.parametrize(
    ("query", "headers", "message"),
    [
        ("?from_seq=0", {}, "from_seq must be one integer >= 1, got '0'"),
        ("?from_seq=-1", {}, "from_seq must be one integer >= 1"),
        ("?from_seq=two", {}, "from_seq must be one integer >= 1, got 'two'"),
        ("?from_seq=1&from_seq=2", {}, "from_seq must be one integer"),
        ("", {"Last-Event-ID": "abc"}, "Last-Event-ID must be the seq"),
    ],
)
async def test_a_bad_resume_point_answers_422(
    server: HttpApiServer, infra: Infra, query: str, headers: dict[str, str], message: str
) -> None:
    run_id = await finished_run(server)
    response = await request(server.port, "GET", f"/runs/{run_id}/events{query}", headers=headers)
    assert response.status == 422
    assert response.error[0] == "InvalidArgument"
    assert message in response.error[1]
    assert open_subscriptions(infra) == []


async def test_a_client_that_leaves_ends_its_stream_and_subscription(
    server: HttpApiServer, infra: Infra
) -> None:
    run_id = await started_run(server)
    async with open_event_stream(server.port, f"/runs/{run_id}/events") as stream:
        await stream.next_frame()  # a keep-alive: the stream is open and subscribed
        assert open_subscriptions(infra) == [run_id]

    async def unsubscribed() -> bool:
        return open_subscriptions(infra) == []

    await eventually(unsubscribed, "the server noticed the client left")


async def test_an_infra_error_after_the_head_ends_the_stream_with_a_stream_error(
    server: HttpApiServer, infra: Infra, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = await finished_run(server)

    async def store_down(*args: object, **kwargs: object) -> list[RunEvent]:
        raise InfraUnavailable("the store did not answer within 5s")

    monkeypatch.setattr(infra.store, "read_events", store_down)
    async with open_event_stream(server.port, f"/runs/{run_id}/events") as stream:
        assert stream.status == 200
        frames = await stream.events_to_the_end()
    assert [(frame.event, frame.id) for frame in frames] == [("StreamError", None)]
    assert frames[0].json() == {
        "type": "InfraUnavailable",
        "message": "the store did not answer within 5s",
    }
    assert open_subscriptions(infra) == []


# Errors


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/runs/run-404"), ("GET", "/runs/run-404/events"), ("POST", "/runs/run-404/cancel")],
)
async def test_an_unknown_run_answers_404_run_not_found(
    server: HttpApiServer, method: str, path: str
) -> None:
    response = await request(server.port, method, path)
    assert response.status == 404
    assert response.error[0] == "RunNotFound"
    assert "run 'run-404' not found" in response.error[1]


@pytest.mark.parametrize("path", ["/", "/run", "/runs/", "/runs/x/events/more", "/runs/x/stop"])
async def test_an_unknown_path_answers_404_not_found(server: HttpApiServer, path: str) -> None:
    response = await request(server.port, "GET", path)
    assert (response.status, response.error[0]) == (404, "NotFound")


async def test_a_percent_encoded_run_id_is_decoded(server: HttpApiServer) -> None:
    response = await request(server.port, "GET", "/runs/run%2F404")
    assert response.status == 404
    assert "run 'run/404' not found" in response.error[1]


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", "/runs", "POST"),
        ("DELETE", "/runs/run-1", "GET"),
        ("POST", "/runs/run-1/events", "GET"),
        ("GET", "/runs/run-1/cancel", "POST"),
    ],
)
async def test_a_wrong_method_answers_405_with_allow(
    server: HttpApiServer, method: str, path: str, allowed: str
) -> None:
    response = await request(server.port, method, path)
    assert response.status == 405
    assert response.headers["allow"] == allowed
    assert response.error[0] == "MethodNotAllowed"


@pytest.mark.parametrize(
    ("raw", "status", "error_type"),
    [
        (b"GARBAGE\r\n\r\n", 400, "MalformedRequest"),
        (b"GET runs HTTP/1.1\r\n\r\n", 400, "MalformedRequest"),
        (b"GET /runs/x HTTP/1.1\r\nno colon here\r\n\r\n", 400, "MalformedRequest"),
        (b"GET /runs/x HTTP/1.1\r\n folded: header\r\n\r\n", 400, "MalformedRequest"),
        (b"GET /runs/x HTTP/2.0\r\n\r\n", 505, "VersionNotSupported"),
        (b"POST /runs HTTP/1.1\r\nContent-Length: ten\r\n\r\n", 400, "MalformedRequest"),
        (
            b"POST /runs HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n",
            400,
            "MalformedRequest",
        ),
        (b"POST /runs HTTP/1.1\r\nContent-Length: 4097\r\n\r\n", 413, "BodyTooLarge"),
        (
            b"POST /runs HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            501,
            "TransferEncodingNotSupported",
        ),
        (b"GET /runs/x HTTP/1.1\r\nX-Big: " + b"x" * 20_000 + b"\r\n\r\n", 431, "HeadTooLarge"),
        (b"POST /runs HTTP/1.1\r\nContent-Length: 10\r\n\r\n{}", 400, "MalformedRequest"),
    ],
)
async def test_a_malformed_request_answers_a_json_error(
    server: HttpApiServer, raw: bytes, status: int, error_type: str
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(raw)
        if raw.endswith(b"{}"):
            writer.write_eof()  # the body ends before its Content-Length
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), DEADLINE)
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b" ")[1] == str(status).encode(), answer
    assert body.startswith(b'{"error": {"type": "' + error_type.encode() + b'"'), answer


async def test_a_request_that_is_not_sent_in_time_answers_408(infra: Infra) -> None:
    async with HttpApiServer("127.0.0.1", 0, ServerLimits(request_timeout=0.05)) as slow_server:
        reader, writer = await asyncio.open_connection("127.0.0.1", slow_server.port)
        try:
            writer.write(b"GET /runs/x HTTP/1.1\r\n")  # and nothing more
            answer = await asyncio.wait_for(reader.read(), DEADLINE)
        finally:
            writer.close()
            await writer.wait_closed()
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert b'"RequestTimeout"' in answer


async def test_unavailable_infrastructure_answers_503(
    server: HttpApiServer, infra: Infra, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def store_down(run_id: str) -> None:
        raise InfraUnavailable("PostgreSQL at 127.0.0.1:5432 did not answer within 5s")

    monkeypatch.setattr(infra.store, "get_run", store_down)
    response = await request(server.port, "GET", "/runs/run-1")
    assert response.status == 503
    assert response.error == (
        "InfraUnavailable",
        "PostgreSQL at 127.0.0.1:5432 did not answer within 5s",
    )


async def test_an_unexpected_error_answers_500_without_its_details(
    server: HttpApiServer,
    infra: Infra,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(run_id: str) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(infra.store, "get_run", broken)
    with caplog.at_level(logging.ERROR, logger="agents_run.server"):
        response = await request(server.port, "GET", "/runs/run-1")
    assert response.status == 500
    assert response.error[0] == "InternalServerError"
    assert "secret" not in response.error[1]
    assert "secret internals" in caplog.text


# Shutdown


async def test_closing_the_server_ends_open_streams_and_refuses_new_connections(
    infra: Infra,
) -> None:
    running = HttpApiServer("127.0.0.1", 0, LIMITS)
    await running.start()
    run_id = await start_run("echo", {"text": "never run"})
    try:
        async with open_event_stream(running.port, f"/runs/{run_id}/events") as stream:
            await stream.next_frame()  # open and subscribed
            await asyncio.wait_for(running.aclose(), DEADLINE)
            assert await stream.events_to_the_end() == []
    finally:
        await running.aclose()
    assert open_subscriptions(infra) == []
    with pytest.raises(ConnectionRefusedError):
        await request(running.port, "GET", f"/runs/{run_id}")
    await run_until_idle()


async def test_closing_the_server_drops_a_connection_that_sent_no_request(infra: Infra) -> None:
    patient = ServerLimits(request_timeout=600, shutdown_timeout=600)
    running = HttpApiServer("127.0.0.1", 0, patient)
    await running.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", running.port)
    try:
        writer.write(b"GET /runs/x HTT")  # a request line, begun and never finished
        await writer.drain()

        async def accepted() -> bool:
            return running.open_connections == 1

        await eventually(accepted, "the server accepted the connection")
        await asyncio.wait_for(running.aclose(), DEADLINE)  # not the 600s of either limit
        assert await asyncio.wait_for(reader.read(), DEADLINE) == b""
    finally:
        await running.aclose()
        writer.close()
        await writer.wait_closed()


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
        f"agents-run serve: listening on http://127.0.0.1:{port} (with in-process worker)",
        "agents-run serve: shutting down",
    ]
    assert (await infra.queue.counts()).total == 0
    assert await infra.store.pending_outbox() == []


async def serving_in_process(
    stop: asyncio.Event, *, grace: float
) -> tuple[asyncio.Task[int], int, list[str]]:
    """``serve`` with its in-process worker, as a task; returns it, its port and what it said."""
    said: list[str] = []
    serving = asyncio.create_task(
        serve(
            "127.0.0.1",
            0,
            in_process_worker=True,
            grace=grace,
            say=said.append,
            stop=stop,
            stop_signals=(),
            idle_poll=0.01,
        )
    )

    async def listening() -> bool:
        return bool(said)

    await eventually(listening, "serve said where it listens")
    return serving, int(re.findall(r"http://127\.0\.0\.1:(\d+)", said[0])[0]), said


async def test_on_shutdown_a_run_in_progress_may_end_within_the_grace_period(
    infra: Infra,
) -> None:
    stop, started, release = asyncio.Event(), asyncio.Event(), asyncio.Event()

    @register_agent("ends-when-released")
    async def agent(input: JsonObject) -> AsyncIterator[JsonObject]:
        started.set()
        await release.wait()
        yield {"step": 1}

    try:
        serving, port, _ = await serving_in_process(stop, grace=DEADLINE * 10)
        response = await request(port, "POST", "/runs", json_body={"agent": "ends-when-released"})
        await asyncio.wait_for(started.wait(), DEADLINE)
        stop.set()
        release.set()  # after the shutdown began: the grace period lets the run finish
        assert await asyncio.wait_for(serving, DEADLINE) == 0
    finally:
        unregister_agent("ends-when-released")
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

    try:
        serving, port, _ = await serving_in_process(stop, grace=0)
        response = await request(port, "POST", "/runs", json_body={"agent": "never-ends"})
        await asyncio.wait_for(started.wait(), DEADLINE)
        stop.set()
        assert await asyncio.wait_for(serving, DEADLINE) == 0
    finally:
        unregister_agent("never-ends")
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
            rb"listening on http://127\.0\.0\.1:(\d+) \(with in-process worker\)", first_line
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
