"""Cancel requests pushed by PostgreSQL: ``request_cancel`` sends ``NOTIFY <schema>_cancel``
with the run id on commit, and each waiting worker listens on a connection of its own.

Connections are reused from wait to wait (one per concurrent waiter, so a worker running N runs
holds N) and closed with the store. The flag in ``runs`` stays the truth: a waiter reads it after
it starts listening and again when its wait ends, so a notification lost with a connection
costs at most one ``timeout``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from contextlib import aclosing

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow

Connection = psycopg.AsyncConnection[TupleRow]


class CancelListener:
    def __init__(self, channel: str, connect: Callable[[], Awaitable[Connection]]) -> None:
        self.channel = channel
        self._connect = connect
        self._idle: list[Connection] = []
        self._busy: set[Connection] = set()
        self._closed = False

    async def wait(
        self, run_id: str, timeout: float, requested: Callable[[], Awaitable[bool]]
    ) -> bool:
        """True once ``requested()`` is (checked after listening and when woken), False after
        ``timeout`` s."""
        deadline = time.monotonic() + timeout
        connection = await self._take()
        try:
            if await requested():
                return True
            while (remaining := deadline - time.monotonic()) > 0:
                async with aclosing(connection.notifies(timeout=remaining, stop_after=1)) as notes:
                    woken = [note async for note in notes if note.payload == run_id]
                if woken:
                    break
            return await requested()
        except psycopg.OperationalError:
            await connection.close()  # lost: the flag read by the next wait covers what it missed
            return await requested()
        finally:
            self._busy.discard(connection)
            if not connection.closed and not self._closed:
                self._idle.append(connection)
            elif not connection.closed:
                await connection.close()

    async def _take(self) -> Connection:
        while self._idle:
            connection = self._idle.pop()
            if not connection.closed:
                self._busy.add(connection)
                return connection
        connection = await self._connect()
        try:
            await connection.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
        except BaseException:
            await connection.close()
            raise
        self._busy.add(connection)
        return connection

    async def aclose(self) -> None:
        self._closed = True
        for connection in [*self._idle, *self._busy]:
            await connection.close()
        self._idle.clear()
        self._busy.clear()
