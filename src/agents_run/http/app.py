"""``create_app``: the HTTP API as a Starlette application, mountable in a user's app."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Collection

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from agents_run.application.agents import registered_agents
from agents_run.application.cancel_run import cancel_run
from agents_run.application.infra import Infra, get_infra, use_infra
from agents_run.application.start_run import start_run
from agents_run.errors import AgentsRunError, InfraConfigError, RunNotFound
from agents_run.http import errors
from agents_run.http.errors import ApiError
from agents_run.http.guards import ApiGuard, HostGuard, RequestLog
from agents_run.http.openapi import openapi_schema
from agents_run.http.requests import parse_start_body, read_body, resume_point
from agents_run.http.settings import LOOPBACK_HOSTS, AuthHook, HttpLimits
from agents_run.http.sse import EventStreamResponse, StreamRegistry
from agents_run.http.viewer import viewer_html


def create_app(
    infra: Infra | None = None,
    *,
    allowed_hosts: Collection[str] = LOOPBACK_HOSTS,
    cors_origins: Collection[str] = (),
    auth: AuthHook | None = None,
    limits: HttpLimits | None = None,
    allow_guessable_ids: bool = False,
) -> Starlette:
    """The API over ``infra`` (default: ``get_infra()`` now), as an ASGI application.

    ``allowed_hosts``: the ``Host`` names it answers for (default the loopback names; ``"*"``
    for any). ``cors_origins``: origins that may call it from a browser (default none: CORS off).
    ``auth``: called with each API request; False answers 401. Run ids travel in URLs, so an
    infra whose ids can be guessed (``SequentialIds``, the in-memory default's) is refused unless
    ``allow_guessable_ids`` (tests); ``load_infra_from_config`` gives random ids in every mode.
    """
    served = infra if infra is not None else get_infra()
    if not isinstance(served, Infra):
        raise TypeError(f"create_app expects an Infra, got {type(served).__name__}")
    if getattr(served.ids, "guessable", False) and not allow_guessable_ids:
        raise InfraConfigError(
            f"create_app: the infra's run ids ({type(served.ids).__name__}) can be guessed, and "
            "anyone who guesses one can read and cancel that run: build the infra with "
            "load_infra_from_config() (random ids in every mode) or pass "
            "allow_guessable_ids=True in tests"
        )
    limits = limits or HttpLimits()
    streams = StreamRegistry()
    api = _Api(served, limits, streams)
    middleware = [Middleware(RequestLog), Middleware(HostGuard, allowed_hosts=allowed_hosts)]
    if cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(cors_origins),
                allow_methods=["GET", "POST"],
                allow_headers=["Content-Type", "Authorization", "Last-Event-ID"],
            )
        )
    middleware.append(Middleware(ApiGuard, auth=auth))
    app = Starlette(
        routes=[
            Route("/", api.viewer, methods=["GET"]),
            Route("/healthz", api.healthz, methods=["GET"]),
            Route("/readyz", api.readyz, methods=["GET"]),
            Route("/openapi.json", api.openapi, methods=["GET"]),
            Route("/agents", api.agents, methods=["GET"]),
            Route("/runs", api.start, methods=["POST"]),
            Route("/runs/{run_id}", api.describe, methods=["GET"]),
            Route("/runs/{run_id}/events", api.events, methods=["GET"]),
            Route("/runs/{run_id}/cancel", api.cancel, methods=["POST"]),
        ],
        middleware=middleware,
        exception_handlers={
            ApiError: errors.on_api_error,
            HTTPException: errors.on_http_exception,
            AgentsRunError: errors.on_agents_run_error,
        },
    )
    app.router.redirect_slashes = False  # a path is answered as sent, never rewritten
    app.state.agents_run_streams = streams
    return app


class _Api:
    """The endpoints: thin functions over the use cases, on the infra the app was made with."""

    def __init__(self, infra: Infra, limits: HttpLimits, streams: StreamRegistry) -> None:
        self.infra = infra
        self.limits = limits
        self.streams = streams

    async def viewer(self, request: Request) -> Response:
        return HTMLResponse(viewer_html(), headers={"Content-Security-Policy": _VIEWER_CSP})

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        timeout = self.limits.ready_timeout
        with use_infra(self.infra):
            try:
                async with asyncio.timeout(timeout):
                    await asyncio.gather(self._store_answers(), self.infra.queue.counts())
            except TimeoutError:
                raise ApiError(
                    503, "InfraUnavailable", f"the infra did not answer within {timeout:g}s"
                ) from None
        return JSONResponse({"status": "ready"})

    async def _store_answers(self) -> None:
        with contextlib.suppress(RunNotFound):  # an answer all the same
            await self.infra.store.get_run("readyz-probe")

    async def openapi(self, request: Request) -> Response:
        return JSONResponse(openapi_schema(request.scope.get("root_path", "")))

    async def agents(self, request: Request) -> Response:
        return JSONResponse({"agents": registered_agents()})

    async def start(self, request: Request) -> Response:
        agent, run_input = parse_start_body(await read_body(request, self.limits), self.limits)
        with use_infra(self.infra):
            run_id = await start_run(agent, run_input)
        location = f"{request.scope.get('root_path', '')}/runs/{run_id}"
        return JSONResponse({"run_id": run_id}, status_code=201, headers={"Location": location})

    async def describe(self, request: Request) -> Response:
        run = await self.infra.store.get_run(request.path_params["run_id"])
        return JSONResponse(
            {
                "id": run.id,
                "agent": run.agent,
                "status": run.status.value,
                "last_seq": run.last_seq,
                "cancel_requested": run.cancel_requested,
            }
        )

    async def events(self, request: Request) -> Response:
        run_id = request.path_params["run_id"]
        from_seq = resume_point(request)
        run = await self.infra.store.get_run(run_id)  # RunNotFound answers 404, not a stream
        if run.status.is_terminal and from_seq > run.last_seq:
            # 204 tells an EventSource to stop reconnecting: nothing will ever follow.
            return Response(status_code=204)
        return EventStreamResponse(self.infra, run_id, from_seq, self.limits, self.streams)

    async def cancel(self, request: Request) -> Response:
        with use_infra(self.infra):
            requested = await cancel_run(request.path_params["run_id"])
        return JSONResponse({"cancel_requested": requested})


_VIEWER_CSP = "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'"
