"""Cancel requests pushed by PostgreSQL: ``request_cancel`` sends ``NOTIFY <schema>_cancel``
with the run id on commit; one listening connection per store, read by one task, wakes the
waiters of that run.

The flag in ``runs`` stays the truth: a waiter reads it when it starts and when its wait ends,
so a notification lost with the connection (or sent before the listener was up) costs at most
one ``timeout``. Waiters only await an ``asyncio.Event``: cancelling one never interrupts a
database call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow

from agents_run.errors import InfraUnavailable

Connection = psycopg.AsyncConnection[TupleRow]

log = logging.getLogger("agents_run.postgres_store")

RECONNECT_SECONDS = 1.0


class CancelListener:
    def __init__(self, channel: str, connect: Callable[[], Awaitable[Connection]]) -> None:
        self.channel = channel
        self._connect = connect
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._task: asyncio.Task[None] | None = None
        self._connection: Connection | None = None
        self._closed = False

    async def wait(
        self, run_id: str, timeout: float, requested: Callable[[], Awaitable[bool]]
    ) -> bool:
        """True once ``requested()`` is (read first, and again when woken or after ``timeout``
        s), False otherwise."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._listen(), name=f"listen {self.channel}")
        woken = asyncio.Event()
        waiters = self._waiters.setdefault(run_id, set())
        waiters.add(woken)
        try:
            deadline = time.monotonic() + timeout
            while True:
                woken.clear()  # before the read: a push during it wakes the wait below
                if await requested():
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(woken.wait(), remaining)
        finally:
            waiters.discard(woken)
            if not waiters:
                self._waiters.pop(run_id, None)

    async def _listen(self) -> None:
        while not self._closed:
            try:
                self._connection = await self._connect()
                await self._connection.execute(
                    sql.SQL("LISTEN {}").format(sql.Identifier(self.channel))
                )
                self._wake_all()  # what was requested before we listened: read the flag again
                async for note in self._connection.notifies():
                    for woken in self._waiters.get(note.payload, ()):
                        woken.set()
            except (psycopg.OperationalError, InfraUnavailable) as error:
                if self.closed:
                    return
                log.warning(
                    "listening for cancel requests failed (%s: %s); again in %gs",
                    type(error).__name__,
                    " ".join(str(error).split()),
                    RECONNECT_SECONDS,
                )
                self._wake_all()
                await asyncio.sleep(RECONNECT_SECONDS)
            finally:
                connection, self._connection = self._connection, None
                if connection is not None:
                    await connection.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def _wake_all(self) -> None:
        for waiters in self._waiters.values():
            for woken in waiters:
                woken.set()

    async def aclose(self) -> None:
        self._closed = True
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        if self._connection is not None:
            await self._connection.close()  # ends notifies() even where the cancel is lost
        await asyncio.wait([task], timeout=5.0)
