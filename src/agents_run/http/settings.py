"""What the HTTP layer is configured with: sizes, deadlines, the auth hook."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.requests import Request

# Called once per request of the API (not for /healthz, /readyz, /openapi.json or the viewer);
# False, or an awaitable of False, answers 401.
AuthHook = Callable[[Request], bool | Awaitable[bool]]

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class HttpLimits:
    """Sizes and deadlines. Every wait of the HTTP layer has one of these as its deadline."""

    max_body_bytes: int = 1024 * 1024
    max_head_bytes: int = 16 * 1024  # request line and headers (uvicorn's h11 buffer)
    max_json_depth: int = 32  # nesting of arrays and objects in a request body
    max_json_number_digits: int = 64
    request_timeout: float = 10.0  # to receive the request line, the headers and the body
    write_timeout: float = 30.0  # for a client to take what was written to it
    keepalive_interval: float = 15.0  # a comment line on an idle event stream
    resubscribe_after: float = 60.0  # stream_run's idle_timeout, after which it resubscribes
    poll_interval: float = 1.0  # stream_run re-reads the store after this much bus silence
    ready_timeout: float = 2.0  # for the infra to answer GET /readyz
    shutdown_timeout: float = 5.0  # for open requests to end on shutdown
