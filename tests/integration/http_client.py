"""A small real HTTP/1.1 client on asyncio streams, for the server tests: raw requests, whole
responses, and server-sent events read frame by frame. Every read has a deadline; every
request asks for ``Connection: close``, so an answer ends where the connection does."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

DEADLINE = 5.0


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]  # names lower-cased
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def error(self) -> tuple[str, str]:
        """The ``(type, message)`` of a JSON error answer."""
        error = self.json()["error"]
        return error["type"], error["message"]


@dataclass(frozen=True)
class SseFrame:
    """One block of an event stream: an event (``event``, ``id``, ``data``) or comments only."""

    event: str | None = None
    id: str | None = None
    data: str | None = None
    comments: list[str] = field(default_factory=list)

    def json(self) -> Any:
        assert self.data is not None, self
        return json.loads(self.data)


def encode_request(
    method: str,
    path: str,
    *,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
) -> bytes:
    """A request that asks the server to close the connection after its answer; any method but
    ``GET`` says ``Content-Type: application/json`` unless ``headers`` name another."""
    given = {name.lower(): value for name, value in (headers or {}).items()}
    lines = [f"{method} {path} HTTP/1.1"]
    if "host" not in given:
        lines.append("Host: 127.0.0.1")
    if "connection" not in given:
        lines.append("Connection: close")
    if method not in ("GET", "HEAD") and "content-type" not in given:
        lines.append("Content-Type: application/json")
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


async def read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), DEADLINE)
    status_line, *header_lines = head.decode("latin-1").split("\r\n")[:-2]
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split(" ")[1]), headers


async def send_raw(port: int, raw: bytes) -> Response:
    """Send ``raw`` bytes, read the whole answer (the server closes every connection)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw)
        await writer.drain()
        status, headers = await read_head(reader)
        body = await asyncio.wait_for(reader.read(), DEADLINE)
        return Response(status, headers, body)
    finally:
        writer.close()
        await asyncio.wait_for(writer.wait_closed(), DEADLINE)


async def request(
    port: int,
    method: str,
    path: str,
    *,
    json_body: object = None,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    if json_body is not None:
        body = json.dumps(json_body).encode()
    return await send_raw(port, encode_request(method, path, body=body, headers=headers))


class EventStream:
    """An open ``text/event-stream`` answer, read one frame at a time."""

    def __init__(
        self,
        status: int,
        headers: dict[str, str],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.status = status
        self.headers = headers
        self.reader = reader
        self.writer = writer

    async def next_frame(self, timeout: float = DEADLINE) -> SseFrame | None:
        """The next frame, or None once the server has closed the stream."""
        fields: dict[str, str] = {}
        comments: list[str] = []
        while True:
            line = await asyncio.wait_for(self.reader.readline(), timeout)
            if not line:
                assert not fields, f"the stream ended inside a frame: {fields}"
                return None
            text = line.decode().rstrip("\n")
            if not text:
                if fields or comments:
                    return SseFrame(
                        fields.get("event"), fields.get("id"), fields.get("data"), comments
                    )
                continue
            if text.startswith(":"):
                comments.append(text[1:].strip())
                continue
            name, _, value = text.partition(": ")
            fields[name] = value

    async def next_event(self, timeout: float = DEADLINE) -> SseFrame | None:
        """The next frame that is an event, skipping keep-alive comments."""
        while True:
            frame = await self.next_frame(timeout)
            if frame is None or frame.event is not None:
                return frame

    async def events_to_the_end(self, timeout: float = DEADLINE) -> list[SseFrame]:
        async def read_all() -> list[SseFrame]:
            events = []
            while (frame := await self.next_event()) is not None:
                events.append(frame)
            return events

        return await asyncio.wait_for(read_all(), timeout)


def _dechunked(chunked: asyncio.StreamReader) -> asyncio.StreamReader:
    """A reader of the body that ``chunked`` carries in chunked transfer coding, as it comes."""
    body = asyncio.StreamReader()

    async def dechunk() -> None:
        try:
            while size := int((await chunked.readuntil(b"\r\n")).strip(), 16):
                body.feed_data(await chunked.readexactly(size))
                await chunked.readexactly(2)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the connection ended: so does the body
        body.feed_eof()

    task = asyncio.ensure_future(dechunk())
    _dechunking.add(task)
    task.add_done_callback(_dechunking.discard)
    return body


_dechunking: set[asyncio.Future[None]] = set()


@asynccontextmanager
async def open_event_stream(
    port: int, path: str, headers: Mapping[str, str] | None = None
) -> AsyncIterator[EventStream]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(encode_request("GET", path, headers=headers))
        await writer.drain()
        status, response_headers = await read_head(reader)
        if response_headers.get("transfer-encoding") == "chunked":
            reader = _dechunked(reader)
        yield EventStream(status, response_headers, reader, writer)
    finally:
        writer.close()
        await asyncio.wait_for(writer.wait_closed(), DEADLINE)
