"""The HTTP API (``create_app`` on uvicorn): a real server on a free port, a real HTTP client, one
request or stream at a time (tests/integration/test_server_live.py has what runs concurrently,
tests/integration/test_http_guards.py the hostile and cross-site requests)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging

import pytest

from agents_run import (
    Infra,
    InfraConfigError,
    InfraUnavailable,
    RunEvent,
    run_until_idle,
    start_run,
)
from agents_run.http import HttpLimits, create_app
from agents_run.http.serving import RunningServer, running_server
from pytest_agents_run.recording import open_subscription_run_ids
from tests.integration.http_client import (
    DEADLINE,
    open_event_stream,
    request,
)
from tests.integration.serving import LIMITS, eventually

pytestmark = pytest.mark.deterministic


async def started_run(server: RunningServer, text: str = "a b") -> str:
    response = await request(
        server.port, "POST", "/runs", json_body={"agent": "echo", "input": {"text": text}}
    )
    assert response.status == 201, response
    run_id: str = response.json()["run_id"]
    return run_id


async def finished_run(server: RunningServer, text: str = "a b") -> str:
    run_id = await started_run(server, text)
    await run_until_idle()
    return run_id


# POST /runs


async def test_post_runs_persists_and_enqueues_a_run_and_answers_201(
    server: RunningServer, infra: Infra
) -> None:
    response = await request(
        server.port, "POST", "/runs", json_body={"agent": "echo", "input": {"text": "hi"}}
    )
    assert response.status == 201
    assert response.headers["content-type"] == "application/json"
    assert response.headers["connection"] == "close"
    run_id = response.json()["run_id"]
    assert response.headers["location"] == f"/runs/{run_id}"
    run = await infra.store.get_run(run_id)
    assert (run.agent, run.input, run.status) == ("echo", {"text": "hi"}, "queued")
    assert (await infra.queue.counts()).waiting == 1


async def test_input_may_be_left_out_and_means_an_empty_object(
    server: RunningServer, infra: Infra
) -> None:
    response = await request(server.port, "POST", "/runs", json_body={"agent": "echo"})
    assert response.status == 201
    assert (await infra.store.get_run(response.json()["run_id"])).input == {}


async def test_a_client_that_expects_100_continue_gets_it_before_sending_the_body(
    server: RunningServer,
) -> None:
    body = b'{"agent": "echo"}'
    head = (
        "POST /runs HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: 100-continue\r\n"
        "Content-Type: application/json\r\nConnection: close\r\n"
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
    server: RunningServer,
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


async def test_get_run_describes_it(server: RunningServer) -> None:
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


async def test_cancel_requests_once_then_answers_false(server: RunningServer) -> None:
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
    server: RunningServer, infra: Infra
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
    assert open_subscription_run_ids(infra) == []


async def test_from_seq_starts_the_stream_there(server: RunningServer) -> None:
    run_id = await finished_run(server, "a b")
    async with open_event_stream(server.port, f"/runs/{run_id}/events?from_seq=3") as stream:
        events = await stream.events_to_the_end()
    assert [(frame.id, frame.event) for frame in events] == [("3", "RunStep"), ("4", "RunFinished")]


async def test_last_event_id_resumes_after_it_and_wins_over_from_seq(
    server: RunningServer,
) -> None:
    run_id = await finished_run(server, "a b")
    async with open_event_stream(
        server.port, f"/runs/{run_id}/events?from_seq=1", headers={"Last-Event-ID": "2"}
    ) as stream:
        events = await stream.events_to_the_end()
    assert [frame.id for frame in events] == ["3", "4"]


@pytest.mark.parametrize("resume", ["?from_seq=5", "?from_seq=99", "#Last-Event-ID: 4"])
async def test_past_the_end_of_a_finished_run_answers_204_so_event_source_stops(
    server: RunningServer, resume: str
) -> None:
    run_id = await finished_run(server, "a b")
    query, headers = resume, {}
    if resume.startswith("#"):
        name, _, value = resume[1:].partition(": ")
        query, headers = "", {name: value}
    response = await request(server.port, "GET", f"/runs/{run_id}/events{query}", headers=headers)
    assert (response.status, response.body) == (204, b"")


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
    server: RunningServer, infra: Infra, query: str, headers: dict[str, str], message: str
) -> None:
    run_id = await finished_run(server)
    response = await request(server.port, "GET", f"/runs/{run_id}/events{query}", headers=headers)
    assert response.status == 422
    assert response.error[0] == "InvalidArgument"
    assert message in response.error[1]
    assert open_subscription_run_ids(infra) == []


async def subscribed(infra: Infra, run_id: str) -> None:
    """Until the stream of ``run_id`` holds its subscription: keep-alives run on their own
    timer, so on Redis the first can come before the SUBSCRIBE is done."""

    async def only_this_run() -> bool:
        return open_subscription_run_ids(infra) == [run_id]

    await eventually(only_this_run, "the stream subscribed to the run")


async def test_a_client_that_leaves_ends_its_stream_and_subscription(
    server: RunningServer, infra: Infra
) -> None:
    run_id = await started_run(server)
    async with open_event_stream(server.port, f"/runs/{run_id}/events") as stream:
        await stream.next_frame()  # a keep-alive: the stream is open
        await subscribed(infra, run_id)

    async def unsubscribed() -> bool:
        return open_subscription_run_ids(infra) == []

    await eventually(unsubscribed, "the server noticed the client left")


async def test_an_infra_error_after_the_head_ends_the_stream_with_a_stream_error(
    server: RunningServer, infra: Infra, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = await finished_run(server)

    async def store_down(*args: object, **kwargs: object) -> list[RunEvent]:
        raise InfraUnavailable("the store did not answer within 5s")

    monkeypatch.setattr(infra.store, "read_events", store_down)
    # A stream retries the store for as long as it waits for an event: here, half a second.
    short_waits = dataclasses.replace(LIMITS, resubscribe_after=0.5)
    app = create_app(infra, limits=short_waits, allow_guessable_ids=True)
    async with (
        running_server(app, "127.0.0.1", 0, short_waits) as impatient,
        open_event_stream(impatient.port, f"/runs/{run_id}/events") as stream,
    ):
        assert stream.status == 200
        frames = await stream.events_to_the_end()
    assert [(frame.event, frame.id) for frame in frames] == [("StreamError", None)]
    assert frames[0].json() == {
        "type": "InfraUnavailable",
        "message": "the store did not answer within 5s",
    }
    assert open_subscription_run_ids(infra) == []


# Errors


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/runs/run-404"), ("GET", "/runs/run-404/events"), ("POST", "/runs/run-404/cancel")],
)
async def test_an_unknown_run_answers_404_run_not_found(
    server: RunningServer, method: str, path: str
) -> None:
    response = await request(server.port, method, path)
    assert response.status == 404
    assert response.error[0] == "RunNotFound"
    assert "run 'run-404' not found" in response.error[1]


@pytest.mark.parametrize(
    "path", ["/run", "/runs/", "/runs/x/events/more", "/runs/x/stop", "/runs/x/can%0Acel"]
)
async def test_an_unknown_path_answers_404_not_found(server: RunningServer, path: str) -> None:
    response = await request(server.port, "GET", path)
    assert (response.status, response.error[0]) == (404, "NotFound")


async def test_a_percent_encoded_run_id_is_decoded(server: RunningServer) -> None:
    response = await request(server.port, "GET", "/runs/run%2D404")
    assert response.status == 404
    assert "run 'run-404' not found" in response.error[1]


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", "/runs", "POST"),
        ("DELETE", "/runs/run-1", "GET, HEAD"),
        ("POST", "/runs/run-1/events", "GET, HEAD"),
        ("GET", "/runs/run-1/cancel", "POST"),
    ],
)
async def test_a_wrong_method_answers_405_with_allow(
    server: RunningServer, method: str, path: str, allowed: str
) -> None:
    response = await request(server.port, method, path)
    assert response.status == 405
    assert set(response.headers["allow"].split(", ")) == set(allowed.split(", "))  # any order
    assert response.error[0] == "MethodNotAllowed"


JSON_POST = b"POST /runs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"


@pytest.mark.parametrize(
    ("raw", "status", "error_type"),
    [
        (b"GARBAGE\r\n\r\n", 400, "MalformedRequest"),
        (
            b"GET /runs/x HTTP/1.1\r\nHost: 127.0.0.1\r\nno colon here\r\n\r\n",
            400,
            "MalformedRequest",
        ),
        (
            b"GET /runs/x HTTP/1.1\r\nHost: 127.0.0.1\r\nBad Name: x\r\n\r\n",
            400,
            "MalformedRequest",
        ),
        (b"GET /runs/a\tb HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 400, "MalformedRequest"),
        (JSON_POST + b"Content-Length: ten\r\n\r\n", 400, "MalformedRequest"),
        (JSON_POST + b"Content-Length: 2\r\nContent-Length: 3\r\n\r\n", 400, "MalformedRequest"),
        (JSON_POST + b"Content-Length: 4097\r\n\r\n", 413, "BodyTooLarge"),
        (
            JSON_POST + b"Transfer-Encoding: chunked\r\n\r\n1001\r\n" + b" " * 4097 + b"\r\n",
            413,
            "BodyTooLarge",
        ),
        (
            b"GET /runs/x HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"x" * 20_000 + b"\r\n\r\n",
            431,
            "HeadTooLarge",
        ),
    ],
)
async def test_a_malformed_request_answers_a_json_error(
    server: RunningServer, raw: bytes, status: int, error_type: str
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(raw)
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), DEADLINE)
        body = await asyncio.wait_for(reader.readuntil(b"}}"), DEADLINE)
    finally:
        writer.close()
        await writer.wait_closed()
    assert status_line.split(b" ")[1] == str(status).encode(), status_line
    assert body.startswith(b'{"error":{"type":"' + error_type.encode() + b'"'), body


async def test_a_chunked_body_is_read_whole(server: RunningServer, infra: Infra) -> None:
    body = b'{"agent": "echo", "input": {"text": "chunked"}}'
    raw = JSON_POST + b"Connection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
    raw += f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(raw)
        answer = await asyncio.wait_for(reader.read(), DEADLINE)
    finally:
        writer.close()
        await writer.wait_closed()
    assert answer.startswith(b"HTTP/1.1 201 Created\r\n"), answer
    assert (await infra.queue.counts()).waiting == 1


SLOW = HttpLimits(request_timeout=0.05)


@pytest.mark.parametrize(
    "sent",
    [
        pytest.param(b"GET /runs/x HTTP/1.1\r\n", id="head-never-ends"),
        pytest.param(JSON_POST + b"Content-Length: 10\r\n\r\n{}", id="body-never-ends"),
    ],
)
async def test_a_request_that_is_not_sent_in_time_answers_408(infra: Infra, sent: bytes) -> None:
    app = create_app(infra, limits=SLOW, allow_guessable_ids=True)
    async with running_server(app, "127.0.0.1", 0, SLOW) as slow_server:
        reader, writer = await asyncio.open_connection("127.0.0.1", slow_server.port)
        try:
            writer.write(sent)  # and nothing more
            answer = await asyncio.wait_for(reader.read(), DEADLINE)
        finally:
            writer.close()
            await writer.wait_closed()
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), answer
    assert b'"RequestTimeout"' in answer


async def test_unavailable_infrastructure_answers_503(
    server: RunningServer, infra: Infra, monkeypatch: pytest.MonkeyPatch
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
    server: RunningServer,
    infra: Infra,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(run_id: str) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(infra.store, "get_run", broken)
    with caplog.at_level(logging.ERROR, logger="agents_run.http"):
        response = await request(server.port, "GET", "/runs/run-1")
    assert response.status == 500
    assert response.error[0] == "InternalServerError"
    assert "secret" not in response.error[1]
    assert "secret internals" in caplog.text


async def test_an_error_of_the_configuration_answers_500_and_goes_to_the_log(
    server: RunningServer,
    infra: Infra,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def no_schema(run_id: str) -> None:
        raise InfraConfigError("PostgreSQL at app@db-7:5432 has no agents-run tables")

    monkeypatch.setattr(infra.store, "get_run", no_schema)
    with caplog.at_level(logging.ERROR, logger="agents_run.http"):
        response = await request(server.port, "GET", "/runs/run-1")
    assert response.status == 500
    assert response.error == ("InternalServerError", "the server failed to answer; see its log")
    assert "app@db-7" in caplog.text


async def test_a_resume_point_too_long_to_be_a_seq_answers_422(server: RunningServer) -> None:
    run_id = await start_run("echo", {"text": "a"})
    response = await request(server.port, "GET", f"/runs/{run_id}/events?from_seq={'9' * 4400}")
    assert response.status == 422


# Shutdown


async def test_closing_the_server_ends_open_streams_and_refuses_new_connections(
    infra: Infra,
) -> None:
    app = create_app(infra, limits=LIMITS, allow_guessable_ids=True)
    run_id = await start_run("echo", {"text": "never run"})
    async with contextlib.AsyncExitStack() as stack:
        running = await stack.enter_async_context(running_server(app, "127.0.0.1", 0, LIMITS))
        async with open_event_stream(running.port, f"/runs/{run_id}/events") as stream:
            await stream.next_frame()  # open
            await subscribed(infra, run_id)
            await asyncio.wait_for(stack.aclose(), DEADLINE)
            assert await stream.events_to_the_end() == []
    assert open_subscription_run_ids(infra) == []
    with pytest.raises(ConnectionRefusedError):
        await request(running.port, "GET", f"/runs/{run_id}")
    await run_until_idle()


async def test_closing_the_server_drops_a_connection_that_sent_no_request(infra: Infra) -> None:
    patient = HttpLimits(request_timeout=600, shutdown_timeout=600)
    app = create_app(infra, limits=patient, allow_guessable_ids=True)
    async with contextlib.AsyncExitStack() as stack:
        running = await stack.enter_async_context(running_server(app, "127.0.0.1", 0, patient))
        reader, writer = await asyncio.open_connection("127.0.0.1", running.port)
        try:
            writer.write(b"GET /runs/x HTT")  # a request line, begun and never finished
            await writer.drain()

            async def accepted() -> bool:
                return running.open_connections == 1

            await eventually(accepted, "the server accepted the connection")
            await asyncio.wait_for(stack.aclose(), DEADLINE)  # not the 600s of either limit
            assert await asyncio.wait_for(reader.read(), DEADLINE) == b""
        finally:
            writer.close()
            await writer.wait_closed()
