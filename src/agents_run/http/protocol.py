"""uvicorn's h11 protocol with the deadlines uvicorn lacks: the request head must arrive within
``request_timeout`` (slowloris), and a client that stops taking what is written to it for
``write_timeout`` is disconnected. Its error answers are JSON, like the app's."""

from __future__ import annotations

import asyncio
import json
from http import HTTPStatus
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from agents_run.http.settings import HttpLimits


class GuardedH11Protocol(H11Protocol):
    limits = HttpLimits()  # set on a subclass per server by ``protocol_with``

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_deadline: asyncio.TimerHandle | None = None
        self._write_deadline: asyncio.TimerHandle | None = None
        self._cycle_awaited: object = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_request_head()

    def connection_lost(self, exc: Exception | None) -> None:
        for deadline in (self._head_deadline, self._write_deadline):
            if deadline is not None:
                deadline.cancel()
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._await_request_head()  # the next request on this connection, just as bounded

    def data_received(self, data: bytes) -> None:
        if self.conn.their_state is h11.IDLE:  # still reading a request head
            buffered = self.conn.trailing_data[0] + data
            limit = self.limits.max_head_bytes
            if len(buffered) > limit and b"\r\n\r\n" not in buffered[: limit + 4]:
                self._answer_and_close(
                    431, "HeadTooLarge", f"the request line and headers exceed {limit} bytes"
                )
                return
        super().data_received(data)

    def _await_request_head(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
        self._cycle_awaited = self.cycle
        self._head_deadline = self.loop.call_later(
            self.limits.request_timeout, self._request_head_late
        )

    def _request_head_late(self) -> None:
        if self.cycle is not self._cycle_awaited or self.transport.is_closing():
            return  # a request came meanwhile: the app bounds the reading of its body
        self._answer_and_close(
            408,
            "RequestTimeout",
            f"the request was not received within {self.limits.request_timeout:g}s",
        )

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._write_deadline is None:
            self._write_deadline = self.loop.call_later(
                self.limits.write_timeout, self.transport.abort
            )

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._write_deadline is not None:
            self._write_deadline.cancel()
            self._write_deadline = None

    def send_400_response(self, msg: str) -> None:
        self._answer_and_close(400, "MalformedRequest", "the request is not valid HTTP/1.1")

    def _answer_and_close(self, status: int, type: str, message: str) -> None:
        body = json.dumps(
            {"error": {"type": type, "message": message}}, separators=(",", ":")
        ).encode()
        reason = HTTPStatus(status).phrase
        head = (
            f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
        )
        if self.conn.our_state in (h11.IDLE, h11.ERROR, h11.SEND_RESPONSE):
            self.transport.write(head.encode("latin-1") + body)
        self.transport.close()


def protocol_with(limits: HttpLimits) -> type[GuardedH11Protocol]:
    return type("GuardedH11Protocol", (GuardedH11Protocol,), {"limits": limits})
