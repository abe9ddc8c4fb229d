"""Errors answered as ``{"error": {"type", "message"}}``, and the mapping from the library's."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from agents_run.errors import (
    AgentsRunError,
    InfraUnavailable,
    InvalidArgument,
    PayloadTooLarge,
    RunNotFound,
    UnknownAgent,
)

log = logging.getLogger("agents_run.http")

_STATUS_OF_ERROR: tuple[tuple[type[AgentsRunError], int], ...] = (
    (RunNotFound, 404),
    (UnknownAgent, 422),
    (PayloadTooLarge, 413),  # before InvalidArgument, its base
    (InvalidArgument, 422),
    (InfraUnavailable, 503),
)
_TYPE_OF_STATUS = {404: "NotFound", 405: "MethodNotAllowed"}
INTERNAL_MESSAGE = "the server failed to answer; see its log"


class ApiError(Exception):
    """A request the API refuses; answered with ``status`` and its JSON error."""

    def __init__(
        self, status: int, type: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.type = type
        self.headers = dict(headers or {})


def malformed(message: str) -> ApiError:
    return ApiError(400, "MalformedRequest", message)


def error_response(
    status: int, type: str, message: str, headers: Mapping[str, str] | None = None
) -> Response:
    return JSONResponse(
        {"error": {"type": type, "message": message}},
        status_code=status,
        headers=dict(headers or {}),
    )


def printable(text: str) -> str:
    """``text`` with control characters escaped, for a log line."""
    return text.encode("unicode_escape").decode("ascii") if not text.isprintable() else text


async def on_api_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, ApiError)
    return error_response(error.status, error.type, str(error), error.headers)


async def on_http_exception(request: Request, error: Exception) -> Response:
    """Starlette's own 404 and 405, in the API's JSON shape."""
    assert isinstance(error, HTTPException)
    type = _TYPE_OF_STATUS.get(error.status_code, "HttpError")
    message = error.detail
    if error.status_code == 404:
        message = (
            f"no such resource {printable(request.url.path)!r}: see POST /runs, GET /runs/{{id}}, "
            "GET /runs/{id}/events, POST /runs/{id}/cancel, GET /openapi.json"
        )
    elif error.status_code == 405:
        allowed = (error.headers or {}).get("Allow", "")
        message = f"{request.method} is not allowed on {printable(request.url.path)}; use {allowed}"
    return error_response(error.status_code, type, message, error.headers)


async def on_agents_run_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, AgentsRunError)
    status = next((code for kind, code in _STATUS_OF_ERROR if isinstance(error, kind)), 500)
    if status == 500:
        # Not the client's doing: the details (hosts, users, schemas) go to the log only.
        log.error(
            "error while serving a request: %s: %s", type(error).__name__, printable(str(error))
        )
        return error_response(500, "InternalServerError", INTERNAL_MESSAGE)
    return error_response(status, type(error).__name__, str(error))


async def on_unexpected_error(request: Request, error: Exception) -> Response:
    log.exception("unexpected error while serving a request")
    return error_response(500, "InternalServerError", INTERNAL_MESSAGE)
