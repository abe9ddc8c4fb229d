"""The HTTP API against cross-site and hostile requests: each case of the table gets its 4xx and
a JSON error, nothing is persisted, and the log gets one line per request, with no traceback and
no raw control character."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping

import pytest
from starlette.requests import Request

from agents_run import Infra, InfraConfigError
from agents_run.config import load_infra_for_serving
from agents_run.http import create_app
from agents_run.http.serving import RunningServer, bearer_token_auth, running_server
from tests.integration.http_client import request
from tests.integration.serving import LIMITS

pytestmark = pytest.mark.deterministic

START = b'{"agent": "echo", "input": {"text": "a"}}'
JSON = {"Content-Type": "application/json"}


def nested(depth: int) -> bytes:
    return b'{"agent": "echo", "input": {"x": ' + b"[" * depth + b"]" * depth + b"}}"


# (what it is, method, path, headers, body, status, error type)
HOSTILE: list[tuple[str, str, str, Mapping[str, str], bytes | None, int, str]] = [
    (
        "form post",
        "POST",
        "/runs",
        {"Content-Type": "application/x-www-form-urlencoded"},
        b"agent=echo",
        415,
        "UnsupportedMediaType",
    ),
    (
        "text/plain post (no preflight)",
        "POST",
        "/runs",
        {"Content-Type": "text/plain"},
        START,
        415,
        "UnsupportedMediaType",
    ),
    (
        "multipart post",
        "POST",
        "/runs",
        {"Content-Type": "multipart/form-data; boundary=x"},
        START,
        415,
        "UnsupportedMediaType",
    ),
    (
        "json in another charset",
        "POST",
        "/runs",
        {"Content-Type": "application/json; charset=latin-1"},
        START,
        415,
        "UnsupportedMediaType",
    ),
    (
        "cancel as a form post",
        "POST",
        "/runs/run-000001/cancel",
        {"Content-Type": "application/x-www-form-urlencoded"},
        b"",
        415,
        "UnsupportedMediaType",
    ),
    (
        "DNS rebinding",
        "GET",
        "/runs/run-000001",
        {"Host": "evil.example"},
        None,
        421,
        "HostNotAllowed",
    ),
    (
        "DNS rebinding with a port",
        "POST",
        "/runs",
        {"Host": "evil.example:8000"},
        START,
        421,
        "HostNotAllowed",
    ),
    ("no Host", "GET", "/healthz", {"Host": ""}, None, 421, "HostNotAllowed"),
    ("JSON nested 600 deep", "POST", "/runs", JSON, nested(600), 400, "MalformedRequest"),
    (
        "JSON nested 100,000 deep",
        "POST",
        "/runs",
        JSON,
        b"[" * 100_000 + b"]" * 100_000,
        400,
        "MalformedRequest",
    ),
    (
        "a 4,400-digit integer",
        "POST",
        "/runs",
        JSON,
        b'{"agent": "echo", "input": {"n": ' + b"9" * 4400 + b"}}",
        400,
        "MalformedRequest",
    ),
    (
        "a 100-digit integer",
        "POST",
        "/runs",
        JSON,
        b'{"agent": "echo", "input": {"n": ' + b"9" * 100 + b"}}",
        400,
        "MalformedRequest",
    ),
    ("unbalanced", "POST", "/runs", JSON, b"[[[", 400, "MalformedRequest"),
    ("invalid UTF-8", "POST", "/runs", JSON, b'{"agent": "\xc3\x28"}', 400, "MalformedRequest"),
    (
        "a lone surrogate",
        "POST",
        "/runs",
        JSON,
        b'{"agent": "echo", "input": {"x": "\\ud800"}}',
        422,
        "InvalidArgument",
    ),
    (
        "control characters in the path",
        "GET",
        "/runs/%1b%5b31m%0aFAKE",
        {},
        None,
        404,
        "RunNotFound",
    ),
    (
        "LF inside a path segment is not deleted",
        "POST",
        "/runs/run-000001/can%0Acel",
        JSON,
        b"",
        404,
        "NotFound",
    ),
    ("a run id cannot be guessed", "GET", "/runs/run-000002", {}, None, 404, "RunNotFound"),
]


@pytest.fixture
async def guarded(infra: Infra) -> AsyncIterator[RunningServer]:
    """The API with its default limits (a body of up to 1 MiB)."""
    app = create_app(infra, allow_guessable_ids=True)
    async with running_server(app, "127.0.0.1", 0) as running:
        yield running


@pytest.mark.parametrize(
    ("method", "path", "headers", "body", "status", "error_type"),
    [pytest.param(*case[1:], id=case[0]) for case in HOSTILE],
)
async def test_a_hostile_request_gets_a_4xx_json_error_and_one_log_line(
    guarded: RunningServer,
    infra: Infra,
    caplog: pytest.LogCaptureFixture,
    *,
    method: str,
    path: str,
    headers: Mapping[str, str],
    body: bytes | None,
    status: int,
    error_type: str,
) -> None:
    with caplog.at_level(logging.INFO, logger="agents_run"):
        response = await request(guarded.port, method, path, body=body, headers=headers)
    assert (response.status, response.error[0]) == (status, error_type), response
    assert (await infra.queue.counts()).total == 0
    lines = caplog.text.splitlines()
    assert len(lines) == 1, lines
    assert "Traceback" not in caplog.text
    assert all(char.isprintable() for char in caplog.text.rstrip("\n"))


async def test_cors_is_off_unless_configured(server: RunningServer) -> None:
    preflight = {
        "Origin": "http://evil.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }
    response = await request(server.port, "OPTIONS", "/runs", headers=preflight)
    assert "access-control-allow-origin" not in response.headers
    answer = await request(server.port, "GET", "/healthz", headers={"Origin": "http://x.example"})
    assert "access-control-allow-origin" not in answer.headers


async def test_configured_cors_origins_may_call_from_a_browser(infra: Infra) -> None:
    app = create_app(
        infra, limits=LIMITS, allow_guessable_ids=True, cors_origins=["http://app.example"]
    )
    async with running_server(app, "127.0.0.1", 0, LIMITS) as running:
        preflight = await request(
            running.port,
            "OPTIONS",
            "/runs",
            headers={"Origin": "http://app.example", "Access-Control-Request-Method": "POST"},
        )
        other = await request(
            running.port, "GET", "/healthz", headers={"Origin": "http://evil.example"}
        )
    assert preflight.status == 200
    assert preflight.headers["access-control-allow-origin"] == "http://app.example"
    assert "access-control-allow-origin" not in other.headers


@pytest.mark.parametrize(
    ("headers", "path", "status"),
    [
        ({}, "/runs/run-404", 401),
        ({"Authorization": "Bearer wrong"}, "/runs/run-404", 401),
        ({"Authorization": "Bearer s3cret"}, "/runs/run-404", 404),
        ({}, "/runs/run-404/events?access_token=s3cret", 404),
        ({}, "/runs/run-404?access_token=s3cret", 401),
        ({}, "/healthz", 200),
        ({}, "/openapi.json", 200),
        ({}, "/", 200),
    ],
)
async def test_the_auth_hook_guards_every_api_request(
    infra: Infra, headers: dict[str, str], path: str, status: int
) -> None:
    app = create_app(
        infra, limits=LIMITS, allow_guessable_ids=True, auth=bearer_token_auth("s3cret")
    )
    async with running_server(app, "127.0.0.1", 0, LIMITS) as running:
        response = await request(running.port, "GET", path, headers=headers)
    assert response.status == status
    if status == 401:
        assert response.error[0] == "Unauthorized"
        assert response.headers["www-authenticate"] == "Bearer"


async def test_an_async_auth_hook_sees_the_request(infra: Infra) -> None:
    seen: list[str] = []

    async def auth(request: Request) -> bool:
        seen.append(request.url.path)
        return False

    app = create_app(infra, limits=LIMITS, allow_guessable_ids=True, auth=auth)
    async with running_server(app, "127.0.0.1", 0, LIMITS) as running:
        response = await request(running.port, "POST", "/runs", body=START)
    assert response.status == 401
    assert seen == ["/runs"]
    assert (await infra.queue.counts()).total == 0


async def test_an_infra_with_guessable_ids_is_refused_unless_allowed(infra: Infra) -> None:
    with pytest.raises(InfraConfigError, match="can be guessed"):
        create_app(infra)


async def test_the_served_infra_of_the_command_has_random_ids() -> None:
    served = load_infra_for_serving({}, max_finished_runs=10)
    create_app(served)  # accepted: random ids
    first, second = served.ids.new_run_id(), served.ids.new_run_id()
    assert first != second
    assert len(first) > 30
