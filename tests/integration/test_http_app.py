"""``create_app`` as a user meets it: mounted under a prefix in their own Starlette app, its
health checks, and its OpenAPI document, against which real answers are validated."""

from __future__ import annotations

from typing import Any

import httpx
import jsonschema
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from agents_run import Infra, InfraUnavailable, run_until_idle
from agents_run.http import create_app
from agents_run.http.openapi import openapi_schema

pytestmark = pytest.mark.deterministic

JSON = {"Content-Type": "application/json"}


async def home(request: Request) -> PlainTextResponse:
    return PlainTextResponse("the user's own page")


def users_app(infra: Infra) -> Starlette:
    return Starlette(
        routes=[
            Route("/", home),
            Mount("/agents", app=create_app(infra, allow_guessable_ids=True)),
        ]
    )


def client(app: Starlette) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1")


async def test_the_app_mounts_under_a_prefix_in_a_users_starlette_app(infra: Infra) -> None:
    async with client(users_app(infra)) as http:
        assert (await http.get("/")).text == "the user's own page"
        started = await http.post("/agents/runs", json={"agent": "echo", "input": {"text": "a"}})
        run_id = started.json()["run_id"]
        assert started.status_code == 201
        assert started.headers["location"] == f"/agents/runs/{run_id}"
        await run_until_idle()
        described = await http.get(f"/agents/runs/{run_id}")
        events = await http.get(f"/agents/runs/{run_id}/events")
        missing = await http.get("/runs")
    assert described.json()["status"] == "finished"
    assert [line for line in events.text.splitlines() if line.startswith("event:")] == [
        "event: RunStarted",
        "event: RunStep",
        "event: RunFinished",
    ]
    assert missing.status_code == 404  # the API lives under the prefix only


async def test_healthz_answers_while_the_process_runs(infra: Infra) -> None:
    async with client(users_app(infra)) as http:
        response = await http.get("/agents/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


async def test_readyz_answers_503_when_the_infra_does_not_answer(
    infra: Infra, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with client(users_app(infra)) as http:
        ready = await http.get("/agents/readyz")

        async def queue_down() -> None:
            raise InfraUnavailable("Redis at 127.0.0.1:6379 did not answer within 5s")

        with monkeypatch.context() as patched:
            patched.setattr(infra.queue, "counts", queue_down)
            down = await http.get("/agents/readyz")
    assert (ready.status_code, ready.json()) == (200, {"status": "ready"})
    assert down.status_code == 503
    assert down.json()["error"]["type"] == "InfraUnavailable"


def check_against_openapi(document: dict[str, Any], path: str, method: str, response: Any) -> None:
    """The response's status is documented for the operation, and its JSON body fits."""
    operation = document["paths"][path][method]
    documented = operation["responses"]
    assert str(response.status_code) in documented, (path, method, response.status_code)
    content = documented[str(response.status_code)].get("content", {})
    if "application/json" in content:
        schema = {
            **content["application/json"]["schema"],
            "components": document["components"],
        }
        jsonschema.validate(response.json(), schema)


async def test_real_answers_match_the_openapi_document(infra: Infra) -> None:
    async with client(users_app(infra)) as http:
        document = (await http.get("/agents/openapi.json")).json()
        assert document["servers"] == [{"url": "/agents"}]
        started = await http.post("/agents/runs", json={"agent": "echo", "input": {"text": "a"}})
        run_id = started.json()["run_id"]
        answers = [
            ("/runs", "post", started),
            ("/runs", "post", await http.post("/agents/runs", json={"agent": "nobody"})),
            ("/runs", "post", await http.post("/agents/runs", content=b"[[[", headers=JSON)),
            ("/runs", "post", await http.post("/agents/runs", content=b"{}")),  # a 415
            ("/runs/{run_id}", "get", await http.get(f"/agents/runs/{run_id}")),
            ("/runs/{run_id}", "get", await http.get("/agents/runs/run-404")),
            (
                "/runs/{run_id}/cancel",
                "post",
                await http.post(f"/agents/runs/{run_id}/cancel", headers=JSON),
            ),
            ("/runs/{run_id}/cancel", "post", await http.post("/agents/runs/x/cancel", json={})),
            ("/runs/{run_id}/events", "get", await http.get(f"/agents/runs/{run_id}/events")),
            (
                "/runs/{run_id}/events",
                "get",
                await http.get(f"/agents/runs/{run_id}/events?from_seq=zero"),
            ),
            (
                "/runs/{run_id}/events",
                "get",
                await http.get(f"/agents/runs/{run_id}/events?from_seq=9"),
            ),
            ("/agents", "get", await http.get("/agents/agents")),
            ("/healthz", "get", await http.get("/agents/healthz")),
            ("/readyz", "get", await http.get("/agents/readyz")),
        ]
        stream = await http.get(f"/agents/runs/{run_id}/events")
        await run_until_idle()
    for path, method, response in answers:
        check_against_openapi(document, path, method, response)
    event_schema = {
        **document["components"]["schemas"]["RunEvent"],
        "components": document["components"],
    }
    data = [
        line.removeprefix("data: ")
        for line in stream.text.splitlines()
        if line.startswith("data: ")
    ]
    assert data
    for line in data:
        jsonschema.validate(httpx.Response(200, content=line).json(), event_schema)


def test_every_route_of_the_app_is_in_the_openapi_document(infra: Infra) -> None:
    app = create_app(infra, allow_guessable_ids=True)
    routes = {route.path for route in app.routes}  # type: ignore[attr-defined]
    assert routes == set(openapi_schema()["paths"])
