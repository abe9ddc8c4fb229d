"""``agents-run serve``: the HTTP API with server-sent events, on the standard library only.

A deliberately small HTTP/1.1 subset: one request per connection (every response says
``Connection: close``), a body only with ``Content-Length`` (no chunked uploads), size limits on
the head and the body, and one deadline for reading both. Infrastructure is reached only through
the use cases and ``get_infra()``. docs/http-api.md describes the API.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import signal
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from agents_run.application.cancel_run import cancel_run
from agents_run.application.infra import Infra, get_infra, use_infra
from agents_run.application.outbox_publisher import publish_pending_outbox_events_once
from agents_run.application.processes import serve_publisher, serve_worker
from agents_run.application.start_run import start_run
from agents_run.application.stream_run import stream_run
from agents_run.domain.events import RunEvent
from agents_run.entrypoints.shutdown import SHUTDOWN_SIGNALS, shutdown_on_signals
from agents_run.errors import (
    AgentsRunError,
    InfraUnavailable,
    InvalidArgument,
    RunNotFound,
    StreamIdleTimeout,
    UnknownAgent,
)

log = logging.getLogger("agents_run.server")

# Bounded, so int() never meets Python's digit limit: no seq or body length needs more.
_DIGITS = re.compile(r"[0-9]{1,18}")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_STATUS_OF_ERROR: tuple[tuple[type[AgentsRunError], HTTPStatus], ...] = (
    (RunNotFound, HTTPStatus.NOT_FOUND),
    (UnknownAgent, HTTPStatus.UNPROCESSABLE_ENTITY),
    (InvalidArgument, HTTPStatus.UNPROCESSABLE_ENTITY),
    (InfraUnavailable, HTTPStatus.SERVICE_UNAVAILABLE),
)


@dataclass(frozen=True)
class ServerLimits:
    """Sizes and deadlines. Every wait of the server has one of these as its deadline."""

    max_head_bytes: int = 16 * 1024
    max_body_bytes: int = 1024 * 1024
    request_timeout: float = 10.0  # to read the request line, the headers and the body
    write_timeout: float = 30.0  # for a client to take what was written to it
    keepalive_interval: float = 15.0  # a comment line on an idle event stream
    resubscribe_after: float = 60.0  # stream_run's idle_timeout, after which it resubscribes
    poll_interval: float = 1.0  # stream_run re-reads the store after this much bus silence
    shutdown_timeout: float = 5.0  # for open requests and streams to end on close
    backlog: int = 1024  # connections the kernel queues before accept (asyncio's default: 100)


class HttpError(Exception):
    """A request the API refuses; answered with ``status`` and ``{"error": {type, message}}``."""

    def __init__(
        self, status: HTTPStatus, type: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.type = type
        self.headers = dict(headers or {})


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # names lower-cased
    body: bytes = b""


@dataclass
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    limits: ServerLimits
    received_head: bool = False  # until then, closing the server may drop it at once
    responded: bool = False

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        async with asyncio.timeout(self.limits.write_timeout):
            await self.writer.drain()

    async def send_head(self, status: HTTPStatus, headers: Mapping[str, str]) -> None:
        self.responded = True
        lines = [f"HTTP/1.1 {status.value} {status.phrase}"]
        lines += [f"{name}: {value}" for name, value in {**headers, "Connection": "close"}.items()]
        await self.send(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    async def send_json(
        self, status: HTTPStatus, payload: object, headers: Mapping[str, str] | None = None
    ) -> None:
        body = json.dumps(payload, ensure_ascii=False).encode() + b"\n"
        await self.send_head(
            status,
            {
                **(headers or {}),
                "Content-Type": "application/json; charset=utf-8",
                "Content-Length": str(len(body)),
            },
        )
        await self.send(body)

    async def send_error(self, status: HTTPStatus, type: str, message: str, **headers: str) -> None:
        await self.send_json(status, {"error": {"type": type, "message": message}}, headers)


class HttpApiServer:
    """The API on ``host:port`` (port 0 picks a free one, see ``port``); an async context manager.

    It serves the infrastructure that ``get_infra()`` returns when it starts. ``aclose()`` stops
    listening, ends open event streams, and waits up to ``limits.shutdown_timeout`` for requests
    in progress before cancelling them.
    """

    def __init__(
        self, host: str = "127.0.0.1", port: int = 8000, limits: ServerLimits | None = None
    ) -> None:
        self.host = host
        self._requested_port = port
        self.limits = limits or ServerLimits()
        self._server: asyncio.Server | None = None
        self._bound_port: int | None = None
        self._infra: Infra | None = None
        self._closing = asyncio.Event()
        self._connections: dict[asyncio.Task[Any], _Connection] = {}

    @property
    def port(self) -> int:
        """The port it listens on (or listened on, once closed)."""
        if self._bound_port is None:
            raise RuntimeError("the server has not started: await start() first")
        return self._bound_port

    @property
    def open_connections(self) -> int:
        return len(self._connections)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host  # an IPv6 address
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        self._infra = get_infra()
        self._server = await asyncio.start_server(
            self._accept,
            self.host,
            self._requested_port,
            limit=self.limits.max_head_bytes,
            backlog=self.limits.backlog,
        )
        self._bound_port = self._server.sockets[0].getsockname()[1]

    async def aclose(self) -> None:
        if self._server is None:
            return
        self._server.close()
        self._closing.set()
        for task, connection in list(self._connections.items()):
            if not connection.received_head:
                task.cancel()  # an idle client: no request of its own to finish
        if self._connections:
            _, late = await asyncio.wait(
                list(self._connections), timeout=self.limits.shutdown_timeout
            )
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        await self._server.wait_closed()

    async def __aenter__(self) -> HttpApiServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None, "called by asyncio.start_server, inside a task"
        assert self._infra is not None, "set by start()"
        connection = _Connection(reader, writer, self.limits)
        self._connections[task] = connection
        try:
            with use_infra(self._infra):
                await self._serve(connection)
        except AgentsRunError:
            log.exception("error after the answer had begun")
        except (ConnectionError, TimeoutError):
            pass  # the client left, or stopped reading what we wrote
        except Exception:
            log.exception("unexpected error while serving a connection")
        finally:
            self._connections.pop(task, None)
            writer.close()
            with contextlib.suppress(ConnectionError, TimeoutError):
                async with asyncio.timeout(self.limits.write_timeout):
                    await writer.wait_closed()

    async def _serve(self, connection: _Connection) -> None:
        request: Request | None = None
        try:
            request = await self._read_request(connection)
            if request is None:
                return  # connected and left without a request
            status = await self._route(request, connection)
        except HttpError as error:
            await connection.send_error(error.status, error.type, str(error), **error.headers)
            status = error.status
        except AgentsRunError as error:
            if connection.responded:
                raise
            status = next(
                (code for kind, code in _STATUS_OF_ERROR if isinstance(error, kind)),
                HTTPStatus.INTERNAL_SERVER_ERROR,
            )
            if status is HTTPStatus.INTERNAL_SERVER_ERROR:
                # Not the client's doing: the details (hosts, users, schemas) go to the log only.
                log.error("error while serving a request: %s: %s", type(error).__name__, error)
                await connection.send_error(
                    status, "InternalServerError", "the server failed to answer; see its log"
                )
            else:
                await connection.send_error(status, type(error).__name__, str(error))
        except Exception:
            if connection.responded:
                raise
            log.exception("unexpected error while serving a request")
            status = HTTPStatus.INTERNAL_SERVER_ERROR
            await connection.send_error(
                status, "InternalServerError", "the server failed to answer; see its log"
            )
        log.info("%s -> %d", f"{request.method} {request.path}" if request else "-", status)

    async def _read_request(self, connection: _Connection) -> Request | None:
        try:
            async with asyncio.timeout(self.limits.request_timeout):
                head = await connection.reader.readuntil(b"\r\n\r\n")
                connection.received_head = True
                request = _parse_head(head)
                length = _content_length(request.headers, self.limits.max_body_bytes)
                if length and request.headers.get("expect", "").lower() == "100-continue":
                    await connection.send(b"HTTP/1.1 100 Continue\r\n\r\n")
                body = await connection.reader.readexactly(length) if length else b""
        except asyncio.IncompleteReadError as error:
            if not error.partial:
                return None
            raise HttpError(
                HTTPStatus.BAD_REQUEST, "MalformedRequest", "the request ended early"
            ) from None
        except asyncio.LimitOverrunError:
            raise HttpError(
                HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
                "HeadTooLarge",
                f"the request line and headers exceed {self.limits.max_head_bytes} bytes",
            ) from None
        except TimeoutError:
            raise HttpError(
                HTTPStatus.REQUEST_TIMEOUT,
                "RequestTimeout",
                f"the request was not received within {self.limits.request_timeout:g}s",
            ) from None
        return Request(request.method, request.path, request.query, request.headers, body)

    async def _route(self, request: Request, connection: _Connection) -> HTTPStatus:
        raw_segments = request.path.split("/")[1:]
        segments = [unquote(segment) for segment in raw_segments]
        match segments:
            case ["runs"]:
                _allow(request, "POST")
                return await self._start(request, connection)
            case ["runs", run_id] if run_id:
                _allow(request, "GET")
                return await self._describe(run_id, connection)
            case ["runs", run_id, "events"] if run_id:
                _allow(request, "GET")
                return await self._stream(run_id, request, connection)
            case ["runs", run_id, "cancel"] if run_id:
                _allow(request, "POST")
                requested = await cancel_run(run_id)
                await connection.send_json(HTTPStatus.OK, {"cancel_requested": requested})
                return HTTPStatus.OK
        raise HttpError(
            HTTPStatus.NOT_FOUND,
            "NotFound",
            f"no such resource {request.path!r}: see POST /runs, GET /runs/{{run_id}}, "
            "GET /runs/{run_id}/events, POST /runs/{run_id}/cancel",
        )

    async def _start(self, request: Request, connection: _Connection) -> HTTPStatus:
        agent, run_input = _parse_start_body(request.body)
        run_id = await start_run(agent, run_input)
        await connection.send_json(
            HTTPStatus.CREATED, {"run_id": run_id}, {"Location": f"/runs/{run_id}"}
        )
        return HTTPStatus.CREATED

    async def _describe(self, run_id: str, connection: _Connection) -> HTTPStatus:
        run = await get_infra().store.get_run(run_id)
        await connection.send_json(
            HTTPStatus.OK,
            {
                "id": run.id,
                "agent": run.agent,
                "status": run.status.value,
                "last_seq": run.last_seq,
                "cancel_requested": run.cancel_requested,
            },
        )
        return HTTPStatus.OK

    async def _stream(self, run_id: str, request: Request, connection: _Connection) -> HTTPStatus:
        from_seq = _resume_point(request)
        run = await get_infra().store.get_run(run_id)  # RunNotFound answers 404, not a stream
        if run.status.is_terminal and from_seq > run.last_seq:
            # 204 tells an EventSource to stop reconnecting: nothing will ever follow.
            await connection.send_head(HTTPStatus.NO_CONTENT, {})
            return HTTPStatus.NO_CONTENT
        first = self._open_stream(run_id, from_seq)
        await connection.send_head(
            HTTPStatus.OK,
            {
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            },
        )
        events = self._events_resubscribing(run_id, from_seq, first)
        try:
            await self._send_events(events, connection)
        finally:
            await events.aclose()  # type: ignore[attr-defined]
        return HTTPStatus.OK

    def _open_stream(self, run_id: str, from_seq: int) -> AsyncIterator[RunEvent]:
        return stream_run(
            run_id,
            from_seq,
            idle_timeout=self.limits.resubscribe_after,
            poll_interval=self.limits.poll_interval,
        )

    async def _events_resubscribing(
        self, run_id: str, next_seq: int, first: AsyncIterator[RunEvent]
    ) -> AsyncIterator[RunEvent]:
        """stream_run's events; after its idle timeout, a fresh stream_run from the next seq.

        A quiet run (queued with no worker yet, or an agent that thinks for minutes) keeps its
        stream for as long as the client stays; keep-alive comments flow meanwhile.
        """
        events = first
        while True:
            try:
                async with contextlib.aclosing(events) as open_events:  # type: ignore[type-var]
                    async for event in open_events:
                        next_seq = event.seq + 1
                        yield event
                return
            except StreamIdleTimeout:
                log.debug("stream of %s idle; subscribing afresh", run_id)
            events = self._open_stream(run_id, next_seq)

    async def _send_events(self, events: AsyncIterator[RunEvent], connection: _Connection) -> None:
        """Write each event as it comes, a comment while idle; end at the terminal event, when
        the client leaves or the server closes. An error after the head is a ``StreamError``."""
        client_gone = asyncio.create_task(_wait_for_eof(connection.reader))
        closing = asyncio.create_task(self._closing.wait())
        next_event: asyncio.Task[RunEvent | None] | None = None
        try:
            while True:
                if next_event is None:
                    next_event = asyncio.create_task(_next(events))
                done, _ = await asyncio.wait(
                    {next_event, client_gone, closing},
                    timeout=self.limits.keepalive_interval,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if client_gone in done or closing in done:
                    return
                if not done:
                    await connection.send(b": keep-alive\n\n")
                    continue
                event, next_event = next_event.result(), None
                if event is None:
                    return  # after the terminal event
                await connection.send(format_sse(event))
        except AgentsRunError as error:
            await connection.send(_stream_error(type(error).__name__, str(error)))
        except (ConnectionError, TimeoutError):
            raise
        except Exception:
            log.exception("unexpected error while streaming")
            await connection.send(
                _stream_error("InternalServerError", "the stream failed; see the server log")
            )
        finally:
            pending = [task for task in (next_event, client_gone, closing) if task is not None]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)


def format_sse(event: RunEvent) -> bytes:
    """One server-sent event: ``id`` the seq, ``event`` the type, ``data`` the JSON event."""
    return f"id: {event.seq}\nevent: {event.type}\ndata: {event.to_json_text()}\n\n".encode()


def _stream_error(type: str, message: str) -> bytes:
    # Not "error": EventSource fires its own "error" events on connection failures. No "id", so
    # a reconnecting client resumes after the last event it really received.
    data = json.dumps({"type": type, "message": message}, ensure_ascii=False)
    return f"event: StreamError\ndata: {data}\n\n".encode()


async def _next(events: AsyncIterator[RunEvent]) -> RunEvent | None:
    return await anext(events, None)


async def _wait_for_eof(reader: asyncio.StreamReader) -> None:
    """Return once the client has closed its side (it sends nothing after its request)."""
    with contextlib.suppress(ConnectionError):
        while await reader.read(4096):
            pass


def _allow(request: Request, method: str) -> None:
    if request.method != method:
        raise HttpError(
            HTTPStatus.METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            f"{request.method} is not allowed on {request.path}; use {method}",
            {"Allow": method},
        )


def _malformed(message: str) -> HttpError:
    return HttpError(HTTPStatus.BAD_REQUEST, "MalformedRequest", message)


def _parse_head(head: bytes) -> Request:
    lines = head.decode("latin-1").split("\r\n")[:-2]
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        raise _malformed(f"malformed request line {lines[0]!r}: send 'METHOD /path HTTP/1.1'")
    method, target, version = parts
    if version not in ("HTTP/1.0", "HTTP/1.1"):
        raise HttpError(
            HTTPStatus.HTTP_VERSION_NOT_SUPPORTED,
            "VersionNotSupported",
            f"{version} is not supported: send HTTP/1.1",
        )
    if not _TOKEN.fullmatch(method) or not target.startswith("/"):
        raise _malformed(f"malformed request line {lines[0]!r}: send 'METHOD /path HTTP/1.1'")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not _TOKEN.fullmatch(name):
            raise _malformed(f"malformed header line {line!r}")
        name, value = name.lower(), value.strip()
        if name == "content-length" and headers.get(name, value) != value:
            raise _malformed("conflicting Content-Length headers")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    parsed = urlsplit(target)
    return Request(method, parsed.path, parse_qs(parsed.query, keep_blank_values=True), headers)


def _content_length(headers: Mapping[str, str], max_body_bytes: int) -> int:
    if "transfer-encoding" in headers:
        raise HttpError(
            HTTPStatus.NOT_IMPLEMENTED,
            "TransferEncodingNotSupported",
            "Transfer-Encoding is not supported: send the body with a Content-Length",
        )
    raw = headers.get("content-length", "0")
    if "," in raw and len(set(raw.replace(" ", "").split(","))) == 1:
        raw = raw.split(",")[0].strip()  # the same length repeated is allowed (RFC 9110)
    if not _DIGITS.fullmatch(raw):
        raise _malformed(f"malformed Content-Length {raw!r}: send the body's size in bytes")
    length = int(raw)
    if length > max_body_bytes:
        raise HttpError(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            "BodyTooLarge",
            f"the body has {length} bytes; the limit is {max_body_bytes}",
        )
    return length


def _parse_start_body(body: bytes) -> tuple[str, dict[str, object]]:
    expected = 'send a JSON object {"agent": "<name>", "input": {...}}'
    try:
        payload = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise _malformed(f"the body is not JSON ({error}): {expected}") from None
    if not isinstance(payload, dict):
        raise _malformed(f"the body is a JSON {type(payload).__name__}: {expected}")
    unknown = sorted(set(payload) - {"agent", "input"})
    if unknown:
        raise _malformed(f"unknown field(s) {', '.join(map(repr, unknown))}: {expected}")
    if not isinstance(payload.get("agent"), str):
        raise _malformed(f'"agent" must be a string naming a registered agent: {expected}')
    run_input = payload.get("input", {})
    if not isinstance(run_input, dict):
        raise _malformed(f'"input" must be a JSON object: {expected}')
    return payload["agent"], run_input


def _resume_point(request: Request) -> int:
    """The first seq to send: Last-Event-ID + 1 where the header is set (a reconnecting
    EventSource sends it), else ``from_seq``, else 1."""
    last_event_id = request.headers.get("last-event-id", "").strip()
    if last_event_id:
        if not _DIGITS.fullmatch(last_event_id):
            raise InvalidArgument(
                f"Last-Event-ID must be the seq of the last event received, got {last_event_id!r}"
            )
        return int(last_event_id) + 1
    values = request.query.get("from_seq", [])
    if not values:
        return 1
    if len(values) > 1 or not _DIGITS.fullmatch(values[0]) or int(values[0]) < 1:
        raise InvalidArgument(f"from_seq must be one integer >= 1, got {', '.join(values)!r}")
    return int(values[0])


async def serve(
    host: str,
    port: int,
    *,
    in_process_worker: bool,
    grace: float = 10.0,
    say: Callable[[str], object] = print,
    stop: asyncio.Event | None = None,
    stop_signals: Iterable[signal.Signals] = SHUTDOWN_SIGNALS,
    limits: ServerLimits | None = None,
    idle_poll: float = 0.1,  # the in-process worker's, between looks at an empty queue
) -> int:
    """Serve the API until ``stop`` is set or a stop signal arrives; then shut down gracefully.

    With ``in_process_worker``, a worker loop and an outbox publisher run in this process too
    (the only way runs make progress on in-memory infrastructure). On shutdown the listener
    closes and open streams end first. Then the worker takes no new job, and runs in progress
    have ``grace`` seconds to end before they stop at their next step (``RunFailed`` of type
    ``WorkerShutdown``); a second signal stops them at once. Last, the publisher publishes what
    is left.
    """
    stop = stop or asyncio.Event()
    limits = limits or ServerLimits()
    worker_draining, worker_stop = asyncio.Event(), asyncio.Event()
    publisher_stop = asyncio.Event()
    worker: asyncio.Task[int] | None = None
    publisher: asyncio.Task[int] | None = None
    # The first signal sets stop; a second does not wait out the worker's grace period.
    with shutdown_on_signals(stop, worker_stop, signals=stop_signals):
        try:
            async with HttpApiServer(host, port, limits) as server:
                if in_process_worker:
                    worker = asyncio.create_task(
                        serve_worker(
                            draining=worker_draining, stop=worker_stop, idle_poll=idle_poll
                        )
                    )
                    publisher = asyncio.create_task(serve_publisher(stop=publisher_stop))
                mode = "with" if in_process_worker else "without"
                say(f"agents-run serve: listening on {server.url} ({mode} in-process worker)")
                await stop.wait()
                say("agents-run serve: shutting down")
        finally:
            worker_draining.set()
            if worker is not None:
                await asyncio.wait([worker], timeout=grace)
                worker_stop.set()
                await _finish(worker, limits.shutdown_timeout)
            publisher_stop.set()
            if publisher is not None:
                await _finish(publisher, limits.shutdown_timeout)
                await _publish_what_is_left(limits.shutdown_timeout)
    return 0


async def _publish_what_is_left(timeout: float) -> None:
    """What the worker appended while the publisher was stopping, so live tails elsewhere get it."""
    try:
        async with asyncio.timeout(timeout):
            await publish_pending_outbox_events_once()
    except Exception:
        log.exception("publishing the outbox on shutdown failed; another publisher will do it")


async def _finish(task: asyncio.Task[int], timeout: float) -> None:
    await asyncio.wait([task], timeout=timeout)
    task.cancel()  # a no-op where it ended in time
    outcome = (await asyncio.gather(task, return_exceptions=True))[0]
    if isinstance(outcome, Exception):
        log.error("in-process worker or publisher failed on shutdown: %r", outcome)
