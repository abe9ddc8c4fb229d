"""Server-sent events of a run: ``id`` the seq, ``event`` the type, ``data`` the JSON event."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from starlette.types import ASGIApp

from agents_run.application.infra import Infra, use_infra
from agents_run.application.stream_run import stream_run
from agents_run.domain.events import RunEvent
from agents_run.errors import AgentsRunError, StreamIdleTimeout
from agents_run.http.settings import HttpLimits

log = logging.getLogger("agents_run.http")

KEEPALIVE = b": keep-alive\n\n"
_QUEUE_SIZE = 256  # events read ahead of the client, per stream
_END = object()


@dataclass
class StreamRegistry:
    """The app's open event streams, so that a server shutting down can end them."""

    closing: bool = False
    waiting: set[asyncio.Queue[object]] = field(default_factory=set)


def end_streams(app: ASGIApp) -> None:
    """End the open event streams of an app made by ``create_app`` (at shutdown: streams never
    end on their own while a run is quiet). New streams end at once too."""
    registry: StreamRegistry = app.state.agents_run_streams  # type: ignore[attr-defined]
    registry.closing = True
    for ahead in registry.waiting:
        with contextlib.suppress(asyncio.QueueFull):  # full: its reader looks at closing anyway
            ahead.put_nowait(_END)


def format_sse(event: RunEvent) -> bytes:
    data = json.dumps(event.to_json(), ensure_ascii=False, separators=(",", ":"))
    return f"id: {event.seq}\nevent: {event.type}\ndata: {data}\n\n".encode()


def stream_error(type: str, message: str) -> bytes:
    # Not "error": EventSource fires its own "error" events on connection failures. No "id", so
    # a reconnecting client resumes after the last event it really received.
    data = json.dumps({"type": type, "message": message}, ensure_ascii=False)
    return f"event: StreamError\ndata: {data}\n\n".encode()


async def events_resubscribing(
    run_id: str, next_seq: int, limits: HttpLimits
) -> AsyncIterator[RunEvent]:
    """stream_run's events; after its idle timeout, a fresh stream_run from the next seq, so a
    quiet run keeps its stream for as long as the client stays."""
    while True:
        events = stream_run(
            run_id,
            next_seq,
            idle_timeout=limits.resubscribe_after,
            poll_interval=limits.poll_interval,
        )
        try:
            async with contextlib.aclosing(events) as open_events:  # type: ignore[type-var]
                async for event in open_events:
                    next_seq = event.seq + 1
                    yield event
            return
        except StreamIdleTimeout:
            log.debug("stream of %s idle; subscribing afresh", run_id)


async def sse_body(
    infra: Infra, run_id: str, from_seq: int, limits: HttpLimits, streams: StreamRegistry
) -> AsyncIterator[bytes]:
    """The bytes of the stream: events as they come (those already there in one chunk), a
    comment while idle; ends after the terminal event, or when the streams are ended."""
    ahead: asyncio.Queue[object] = asyncio.Queue(_QUEUE_SIZE)
    reader = asyncio.create_task(_read_ahead(infra, run_id, from_seq, limits, ahead))
    streams.waiting.add(ahead)
    try:
        while not streams.closing:
            item = await _next_item(ahead, limits.keepalive_interval)
            if item is None:
                yield KEEPALIVE
                continue
            chunk = bytearray()
            while True:
                if isinstance(item, RunEvent):
                    chunk += format_sse(item)
                elif isinstance(item, bytes):
                    chunk += item  # a StreamError, the last thing sent
                if not isinstance(item, RunEvent) or ahead.empty():
                    break
                item = ahead.get_nowait()
            if chunk:
                yield bytes(chunk)
            if not isinstance(item, RunEvent):
                return
    finally:
        streams.waiting.discard(ahead)
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)


async def _next_item(ahead: asyncio.Queue[object], wait: float) -> object:
    """The next queued item; None after ``wait`` seconds of nothing."""
    if not ahead.empty():
        return ahead.get_nowait()
    try:
        async with asyncio.timeout(wait):
            return await ahead.get()
    except TimeoutError:
        return None


async def _read_ahead(
    infra: Infra, run_id: str, from_seq: int, limits: HttpLimits, ahead: asyncio.Queue[object]
) -> None:
    try:
        with use_infra(infra):
            async for event in events_resubscribing(run_id, from_seq, limits):
                await ahead.put(event)
        await ahead.put(_END)
    except AgentsRunError as error:
        await ahead.put(stream_error(type(error).__name__, str(error)))
    except Exception:
        log.exception("unexpected error while streaming run %s", run_id)
        await ahead.put(
            stream_error("InternalServerError", "the stream failed; see the server log")
        )
