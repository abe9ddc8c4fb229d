"""Reading what a client sent: the body (bounded in size, time and JSON shape) and resume points."""

from __future__ import annotations

import asyncio
import json
import re

from starlette.requests import ClientDisconnect, Request

from agents_run.errors import InvalidArgument
from agents_run.http.errors import ApiError, malformed
from agents_run.http.settings import HttpLimits

# Bounded, so int() never meets Python's digit limit: no seq needs more.
_DIGITS = re.compile(r"[0-9]{1,18}")
_EXPECTED_START = 'send a JSON object {"agent": "<name>", "input": {...}}'


async def read_body(request: Request, limits: HttpLimits) -> bytes:
    """The whole body, refused past ``max_body_bytes`` (413) or ``request_timeout`` (408)."""
    declared = request.headers.get("content-length")
    if (
        declared is not None
        and _DIGITS.fullmatch(declared)
        and int(declared) > limits.max_body_bytes
    ):
        raise _too_large(int(declared), limits)
    body = bytearray()
    try:
        async with asyncio.timeout(limits.request_timeout):
            async for chunk in request.stream():
                body += chunk
                if len(body) > limits.max_body_bytes:
                    raise _too_large(len(body), limits)
    except TimeoutError:
        raise ApiError(
            408,
            "RequestTimeout",
            f"the request was not received within {limits.request_timeout:g}s",
            {"Connection": "close"},
        ) from None
    except ClientDisconnect:
        raise malformed("the client left before the body ended") from None
    return bytes(body)


def _too_large(size: int, limits: HttpLimits) -> ApiError:
    return ApiError(
        413,
        "BodyTooLarge",
        f"the body has {size} bytes or more; the limit is {limits.max_body_bytes}",
        {"Connection": "close"},
    )


def parse_json(body: bytes, limits: HttpLimits, expected: str) -> object:
    """JSON, or a 400 that says why: not UTF-8, not JSON, nested or numbered past the limits."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise malformed(f"the body is not JSON (not UTF-8: {error.reason}): {expected}") from None
    depth = _nesting_depth(text)
    if depth > limits.max_json_depth:
        raise malformed(
            f"the body is not JSON we accept: nested {depth} levels deep, the limit is "
            f"{limits.max_json_depth}: {expected}"
        )

    def bounded_int(digits: str) -> int:
        if len(digits) > limits.max_json_number_digits:
            raise ValueError(
                f"a number of {len(digits)} digits (the limit is {limits.max_json_number_digits})"
            )
        return int(digits)

    try:
        return json.loads(text, parse_int=bounded_int)
    except (ValueError, RecursionError) as error:
        reason = str(error) if str(error) else type(error).__name__
        raise malformed(f"the body is not JSON ({reason}): {expected}") from None


def _nesting_depth(text: str) -> int:
    """The deepest nesting of brackets outside strings (an upper bound on the JSON's depth)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def parse_start_body(body: bytes, limits: HttpLimits) -> tuple[str, dict[str, object]]:
    payload = parse_json(body, limits, _EXPECTED_START)
    if not isinstance(payload, dict):
        raise malformed(f"the body is a JSON {type(payload).__name__}: {_EXPECTED_START}")
    unknown = sorted(set(payload) - {"agent", "input"})
    if unknown:
        raise malformed(f"unknown field(s) {', '.join(map(repr, unknown))}: {_EXPECTED_START}")
    if not isinstance(payload.get("agent"), str):
        raise malformed(f'"agent" must be a string naming a registered agent: {_EXPECTED_START}')
    run_input = payload.get("input", {})
    if not isinstance(run_input, dict):
        raise malformed(f'"input" must be a JSON object: {_EXPECTED_START}')
    return payload["agent"], run_input


def resume_point(request: Request) -> int:
    """The first seq to send: Last-Event-ID + 1 where the header is set (a reconnecting
    EventSource sends it), else ``from_seq``, else 1."""
    last_event_id = request.headers.get("last-event-id", "").strip()
    if last_event_id:
        if not _DIGITS.fullmatch(last_event_id):
            raise InvalidArgument(
                "Last-Event-ID must be the seq of the last event received, got "
                f"{last_event_id[:40]!r}"
            )
        return int(last_event_id) + 1
    values = request.query_params.getlist("from_seq")
    if not values:
        return 1
    if len(values) > 1 or not _DIGITS.fullmatch(values[0]) or int(values[0]) < 1:
        shown = ", ".join(values)[:40]
        raise InvalidArgument(f"from_seq must be one integer >= 1, got {shown!r}")
    return int(values[0])
