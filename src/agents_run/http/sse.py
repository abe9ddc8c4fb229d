"""Server-sent events of a run: ``id`` the seq, ``event`` the type, ``data`` the JSON event."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from agents_run.application.infra import Infra, use_infra
from agents_run.application.stream_run import stream_run
from agents_run.domain.events import RunEvent
from agents_run.errors import AgentsRunError, StreamIdleTimeout
from agents_run.http.settings import HttpLimits

log = logging.getLogger("agents_run.http")

KEEPALIVE = b": keep-alive\n\n"


@dataclass
class StreamRegistry:
    """The app's open event streams, so that a server shutting down can end them."""

    ended: asyncio.Event = field(default_factory=asyncio.Event)


def end_streams(app: ASGIApp) -> None:
    """End the open event streams of an app made by ``create_app`` (at shutdown: streams never
    end on their own while a run is quiet). New streams end at once too."""
    registry: StreamRegistry = app.state.agents_run_streams  # type: ignore[attr-defined]
    registry.ended.set()


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


class EventStreamResponse(Response):
    """The run's events sent as they come, each straight from the task that reads them (one
    wake-up per event), a comment while idle; ends after the terminal event, when the client
    leaves, or when the app's streams are ended."""

    def __init__(
        self, infra: Infra, run_id: str, from_seq: int, limits: HttpLimits, streams: StreamRegistry
    ) -> None:
        super().__init__(status_code=200)
        self.infra = infra
        self.run_id = run_id
        self.from_seq = from_seq
        self.limits = limits
        self.streams = streams

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})
        sending = asyncio.Lock()  # the pump and the keep-alives write whole frames in turn
        last_sent = asyncio.get_running_loop().time()

        async def send_body(chunk: bytes) -> None:
            nonlocal last_sent
            async with sending:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            last_sent = asyncio.get_running_loop().time()

        pump = asyncio.create_task(self._pump(send_body))
        gone = asyncio.create_task(_client_gone(receive))
        ending = asyncio.create_task(self.streams.ended.wait())
        interval = self.limits.keepalive_interval
        try:
            while True:
                idle = asyncio.get_running_loop().time() - last_sent
                done, _ = await asyncio.wait(
                    {pump, gone, ending},
                    timeout=max(interval - idle, 0.0),
                    return_when="FIRST_COMPLETED",
                )
                if done:
                    break
                if asyncio.get_running_loop().time() - last_sent >= interval:
                    await send_body(KEEPALIVE)
            if gone not in done:
                async with sending:
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            for task in (pump, gone, ending):
                task.cancel()
            await asyncio.gather(pump, gone, ending, return_exceptions=True)

    async def _pump(self, send_body: Callable[[bytes], Awaitable[None]]) -> None:
        try:
            with use_infra(self.infra):
                events = events_resubscribing(self.run_id, self.from_seq, self.limits)
                async with contextlib.aclosing(events) as open_events:  # type: ignore[type-var]
                    async for event in open_events:
                        await send_body(format_sse(event))
        except AgentsRunError as error:
            await send_body(stream_error(type(error).__name__, str(error)))
        except OSError:
            pass  # the client left while we wrote
        except Exception:
            log.exception("unexpected error while streaming run %s", self.run_id)
            await send_body(
                stream_error("InternalServerError", "the stream failed; see the server log")
            )


async def _client_gone(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


_SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]
