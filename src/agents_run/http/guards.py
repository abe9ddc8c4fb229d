"""The checks every request passes, in ASGI middleware: one log line per request and no
traceback for the client's mistakes (``RequestLog``); the Host allow-list (``HostGuard``); the
auth hook and ``application/json`` for state-changing requests (``ApiGuard``)."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Collection

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agents_run.http.errors import INTERNAL_MESSAGE, error_response, printable
from agents_run.http.settings import AuthHook

log = logging.getLogger("agents_run.http")

# Paths that describe the service rather than act on runs: no auth hook, any content type.
PUBLIC_PATHS = frozenset({"/", "/healthz", "/readyz", "/openapi.json"})
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class RequestLog:
    """Logs ``METHOD path -> status`` once per request, control characters escaped; an error
    that escapes the app answers 500 (or ends a stream already begun) with one log entry."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 0

        async def send_logged(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_logged)
        except Exception:
            log.exception("unexpected error while serving a request")
            if status:
                raise  # the answer has begun: the server ends the connection
            status = 500
            await error_response(500, "InternalServerError", INTERNAL_MESSAGE)(scope, receive, send)
        finally:
            path = printable(scope.get("root_path", "") + scope["path"])
            log.info("%s %s -> %d", printable(scope["method"]), path, status)


class HostGuard:
    """Answers 421 to a ``Host`` outside ``allowed_hosts`` (DNS rebinding); ``"*"`` allows any."""

    def __init__(self, app: ASGIApp, allowed_hosts: Collection[str]) -> None:
        self.app = app
        self.allowed = frozenset(host.lower() for host in allowed_hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or "*" in self.allowed:
            await self.app(scope, receive, send)
            return
        host = Headers(scope=scope).get("host", "")
        name = _host_name(host)
        if name in self.allowed:
            await self.app(scope, receive, send)
            return
        await error_response(
            421,
            "HostNotAllowed",
            f"this server does not answer for the host {printable(host)[:100]!r}; it answers for "
            f"{', '.join(sorted(self.allowed))} (configure allowed_hosts)",
        )(scope, receive, send)


def _host_name(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("["):  # [::1]:8000
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class ApiGuard:
    """The auth hook for every request outside ``PUBLIC_PATHS`` (401 where it says no), and
    ``Content-Type: application/json`` for every state-changing request (415 otherwise):
    browsers send ``text/plain`` and form posts across origins without asking first."""

    def __init__(self, app: ASGIApp, auth: AuthHook | None) -> None:
        self.app = app
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] == "OPTIONS":
            await self.app(scope, receive, send)
            return
        if self.auth is not None and scope["path"] not in PUBLIC_PATHS:
            allowed = self.auth(Request(scope, receive))
            if inspect.isawaitable(allowed):
                allowed = await allowed
            if allowed is not True:
                await error_response(
                    401,
                    "Unauthorized",
                    "this request is not authorized: send the credentials the server expects "
                    "(agents-run serve: Authorization: Bearer $AGENTS_RUN_HTTP_TOKEN)",
                    {"WWW-Authenticate": "Bearer"},
                )(scope, receive, send)
                return
        if scope["method"] not in _SAFE_METHODS:
            media_type, _, params = Headers(scope=scope).get("content-type", "").partition(";")
            charset = params.strip().lower().removeprefix("charset=").strip('"')
            if media_type.strip().lower() != "application/json" or charset not in ("", "utf-8"):
                await error_response(
                    415,
                    "UnsupportedMediaType",
                    f"{printable(scope['method'])} requests must be sent with Content-Type: "
                    "application/json (UTF-8), even with an empty body",
                )(scope, receive, send)
                return
        await self.app(scope, receive, send)
