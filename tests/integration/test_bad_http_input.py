"""Bad input to every HTTP endpoint: each answered with its documented status and error type
(docs/http-api.md#errors) in the API's JSON shape, within a deadline, with no traceback and no
secret in the answer or the log, and nothing persisted or enqueued. The HTTP half of the table
in test_bad_input.py."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import httpx
import pytest
from starlette.requests import Request

from agents_run import Infra
from agents_run.http import create_app
from agents_run.ports import QueueCounts

pytestmark = pytest.mark.deterministic

DEADLINE = 10.0
SECRET = "s3cret-token"
AUTHORIZED = {"Authorization": f"Bearer {SECRET}"}
JSON = {"Content-Type": "application/json"}


@dataclass(frozen=True)
class Case:
    method: str
    path: str
    status: int
    type: str
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=lambda: dict(JSON))


def _post_runs(body: bytes, status: int, type: str, **headers: str) -> Case:
    return Case("POST", "/runs", status, type, body, {**JSON, **headers})


def _events(query: str = "", status: int = 422, last_event_id: str = "") -> Case:
    type = "InvalidArgument" if status == 422 else "RunNotFound"
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    return Case("GET", f"/runs/run-nope/events{query}", status, type, None, headers)


START = b'{"agent": "echo", "input": {"text": "a"}}'
MALFORMED = "MalformedRequest"

CASES: dict[str, Case] = {
    # POST /runs: the content type
    "POST /runs text/plain": _post_runs(START, 415, "UnsupportedMediaType", **{
        "Content-Type": "text/plain"}),
    "POST /runs form": _post_runs(b"agent=echo", 415, "UnsupportedMediaType", **{
        "Content-Type": "application/x-www-form-urlencoded"}),
    "POST /runs multipart": _post_runs(START, 415, "UnsupportedMediaType", **{
        "Content-Type": "multipart/form-data; boundary=x"}),
    "POST /runs no content type": Case("POST", "/runs", 415, "UnsupportedMediaType", START, {}),
    "POST /runs json, latin-1": _post_runs(START, 415, "UnsupportedMediaType", **{
        "Content-Type": "application/json; charset=latin-1"}),
    # POST /runs: the body
    "POST /runs empty body": _post_runs(b"", 400, MALFORMED),
    "POST /runs not JSON": _post_runs(b"{not json", 400, MALFORMED),
    "POST /runs unbalanced": _post_runs(b'{"agent": "echo"', 400, MALFORMED),
    "POST /runs not UTF-8": _post_runs(b'{"agent": "\xff"}', 400, MALFORMED),
    "POST /runs a JSON list": _post_runs(b'["echo"]', 400, MALFORMED),
    "POST /runs a JSON string": _post_runs(b'"echo"', 400, MALFORMED),
    "POST /runs JSON null": _post_runs(b"null", 400, MALFORMED),
    "POST /runs no agent": _post_runs(b'{"input": {}}', 400, MALFORMED),
    "POST /runs agent an int": _post_runs(b'{"agent": 1}', 400, MALFORMED),
    "POST /runs input a list": _post_runs(b'{"agent": "echo", "input": [1]}', 400, MALFORMED),
    "POST /runs input a string": _post_runs(b'{"agent": "echo", "input": "a"}', 400, MALFORMED),
    "POST /runs unknown field": _post_runs(b'{"agent": "echo", "inputs": {}}', 400, MALFORMED),
    "POST /runs nested too deep": _post_runs(
        b'{"agent": "echo", "input": {"x": ' + b"[" * 100 + b"]" * 100 + b"}}", 400, MALFORMED
    ),
    "POST /runs number too long": _post_runs(
        b'{"agent": "echo", "input": {"n": ' + b"9" * 100 + b"}}", 400, MALFORMED
    ),
    "POST /runs body over 1 MiB": _post_runs(
        b'{"agent": "echo", "input": {"t": "' + b"x" * 1_048_576 + b'"}}', 413, "BodyTooLarge"
    ),
    "POST /runs declared length over 1 MiB": _post_runs(
        START, 413, "BodyTooLarge", **{"Content-Length": "99999999"}
    ),
    # POST /runs: what the use case refuses
    "POST /runs unknown agent": _post_runs(b'{"agent": "no-such-agent"}', 422, "UnknownAgent"),
    "POST /runs empty agent": _post_runs(b'{"agent": " "}', 422, "InvalidArgument"),
    "POST /runs input NaN": _post_runs(
        b'{"agent": "echo", "input": {"x": NaN}}', 422, "InvalidArgument"
    ),
    "POST /runs input Infinity": _post_runs(
        b'{"agent": "echo", "input": {"x": -Infinity}}', 422, "InvalidArgument"
    ),
    "POST /runs input lone surrogate": _post_runs(
        b'{"agent": "echo", "input": {"x": "\\ud800"}}', 422, "InvalidArgument"
    ),
    "POST /runs input NUL": _post_runs(
        b'{"agent": "echo", "input": {"x": "a\\u0000"}}', 422, "InvalidArgument"
    ),
    # GET /runs/{id}
    "GET /runs/{id} unknown": Case("GET", "/runs/run-nope", 404, "RunNotFound", None, {}),
    "GET /runs/{id} huge id": Case("GET", "/runs/" + "r" * 8000, 404, "RunNotFound", None, {}),
    "GET /runs/{id} encoded LF": Case("GET", "/runs/run%0Anope", 404, "RunNotFound", None, {}),
    # GET /runs/{id}/events
    "events unknown run": _events(status=404),
    "events from_seq 0": _events("?from_seq=0"),
    "events from_seq -1": _events("?from_seq=-1"),
    "events from_seq not a number": _events("?from_seq=abc"),
    "events from_seq float": _events("?from_seq=1.5"),
    "events from_seq empty": _events("?from_seq="),
    "events from_seq twice": _events("?from_seq=1&from_seq=2"),
    "events from_seq 30 digits": _events("?from_seq=" + "9" * 30),
    "events Last-Event-ID not a number": _events(last_event_id="abc"),
    "events Last-Event-ID negative": _events(last_event_id="-1"),
    "events Last-Event-ID 30 digits": _events(last_event_id="9" * 30),
    # POST /runs/{id}/cancel
    "cancel unknown run": Case("POST", "/runs/run-nope/cancel", 404, "RunNotFound"),
    "cancel text/plain": Case(
        "POST", "/runs/run-nope/cancel", 415, "UnsupportedMediaType", b"",
        {"Content-Type": "text/plain"},
    ),
    "cancel no content type": Case(
        "POST", "/runs/run-nope/cancel", 415, "UnsupportedMediaType", None, {}
    ),
    # methods and paths
    "GET /runs": Case("GET", "/runs", 405, "MethodNotAllowed", None, {}),
    "PUT /runs": Case("PUT", "/runs", 405, "MethodNotAllowed", START),
    "DELETE /runs/{id}": Case("DELETE", "/runs/run-nope", 405, "MethodNotAllowed"),
    "PATCH /runs/{id}": Case("PATCH", "/runs/run-nope", 405, "MethodNotAllowed", b"{}"),
    "POST /runs/{id}/events": Case("POST", "/runs/run-nope/events", 405, "MethodNotAllowed"),
    "GET /runs/{id}/cancel": Case(
        "GET", "/runs/run-nope/cancel", 405, "MethodNotAllowed", None, {}
    ),
    "POST /healthz": Case("POST", "/healthz", 405, "MethodNotAllowed"),
    "POST /readyz": Case("POST", "/readyz", 405, "MethodNotAllowed"),
    "DELETE /agents": Case("DELETE", "/agents", 405, "MethodNotAllowed"),
    "POST /openapi.json": Case("POST", "/openapi.json", 405, "MethodNotAllowed"),
    "unknown path": Case("GET", "/nope", 404, "NotFound", None, {}),
    "trailing slash": Case("GET", "/runs/", 404, "NotFound", None, {}),
    "encoded LF in a path": Case("POST", "/runs/run-nope/can%0Acel", 404, "NotFound"),
    # who may ask
    "no token": Case("GET", "/runs/run-nope", 401, "Unauthorized", None, {"Authorization": ""}),
    "wrong token": Case(
        "GET", "/runs/run-nope", 401, "Unauthorized", None, {"Authorization": "Bearer nope"}
    ),
    "token of another scheme": Case(
        "GET", "/runs/run-nope", 401, "Unauthorized", None, {"Authorization": f"Basic {SECRET}"}
    ),
    "host not allowed": Case("GET", "/runs/run-nope", 421, "HostNotAllowed", None, {
        "Host": "evil.example"}),
}  # fmt: skip


def _authorized(request: Request) -> bool:
    return request.headers.get("authorization") == f"Bearer {SECRET}"


# Refused before any store or queue call: on the real servers only the cases that reach the store.
_REACH_THE_STORE = {"GET /runs/{id} unknown", "events unknown run", "cancel unknown run"}
_MEMORY_ONLY = pytest.mark.agents_run_memory_only(reason="refused before any infra call")


@pytest.mark.parametrize(
    "name",
    [pytest.param(name, marks=[] if name in _REACH_THE_STORE else _MEMORY_ONLY) for name in CASES],
)
async def test_an_endpoint_refuses_bad_input_with_its_documented_status_and_error(
    infra: Infra, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    case = CASES[name]
    app = create_app(infra, auth=_authorized, allow_guessable_ids=True)
    headers = {**AUTHORIZED, **case.headers}
    headers = {key: value for key, value in headers.items() if value}
    transport = httpx.ASGITransport(app=app)
    caplog.set_level(logging.INFO, logger="agents_run")
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http,
        asyncio.timeout(DEADLINE),
    ):
        answer = await http.request(case.method, case.path, content=case.body, headers=headers)
    assert (answer.status_code, answer.json()["error"]["type"]) == (case.status, case.type)
    assert answer.json()["error"]["message"]  # says what was wrong
    assert answer.headers["content-type"] == "application/json"
    assert SECRET not in answer.text
    assert "Traceback" not in answer.text
    assert not [record for record in caplog.records if record.exc_info or SECRET in record.message]
    assert await infra.store.count_pending_outbox() == 0
    assert await infra.queue.counts() == QueueCounts(waiting=0, active=0)
