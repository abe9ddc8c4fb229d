"""The PostgreSQL store's connections: a pool opened on first use, in the running loop, every
wait bounded by the connect timeout (a call's reply by twice that), and the errors that name the
server without its password."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import math
import weakref
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any, Concatenate, ParamSpec, TypeVar

import psycopg
from psycopg.rows import TupleRow
from psycopg.types.json import set_json_loads
from psycopg_pool import AsyncConnectionPool

from agents_run.errors import InfraConfigError, InfraUnavailable
from agents_run.redaction import scrub

Connection = psycopg.AsyncConnection[TupleRow]
T = TypeVar("T")
P = ParamSpec("P")
Store = TypeVar("Store", bound="PostgresConnections")
# How long a call waits for its reply, in connect timeouts: a network that loses packets without
# closing anything (keepalives are answered by a proxy or a middlebox) would hang it for ever.
CALL_TIMEOUTS = 2

_decode_json = json.JSONDecoder().raw_decode


def load_json(data: bytes | str) -> Any:
    """``json.loads`` for the server's own JSON output, about 3x faster on a backfill's rows:
    text (no encoding to detect) that starts with the value (no whitespace to skip)."""
    text = data.decode() if isinstance(data, bytes) else data
    try:
        return _decode_json(text)[0]
    except json.JSONDecodeError:  # not as the server writes it: the full parser decides
        return json.loads(text)


class PostgresConnections:
    """The connection half of ``PostgresRunStore``: set up by its constructor."""

    schema: str
    application_name: str
    _url: str
    _display_url: str
    _secrets: list[str]
    _connect_timeout: float
    _max_connections: int
    _pool: AsyncConnectionPool[Connection] | None
    _pooled: weakref.WeakSet[Connection]
    _pool_lock: asyncio.Lock
    _closed: bool

    def _connection_options(self) -> dict[str, Any]:
        # libpq counts whole seconds, at least 2; the asyncio deadlines keep the exact bound.
        seconds = max(2, math.ceil(self._connect_timeout))
        return {
            "autocommit": True,
            "connect_timeout": seconds,
            "application_name": self.application_name,
            # A server or network that dies mid-call is noticed in about 2x the timeout
            # instead of TCP's default of many minutes (a live server answers the probes).
            "keepalives": 1,
            "keepalives_idle": seconds,
            "keepalives_interval": 1,
            "keepalives_count": seconds,
            "tcp_user_timeout": seconds * 2000,
        }

    async def _opened_pool(self) -> AsyncConnectionPool[Connection]:
        if self._closed:
            raise self._closed_error()
        async with self._pool_lock:
            if self._pool is None:
                # One direct connection first: it fails fast with the server's own reason,
                # where the pool would retry quietly until its timeout.
                await (await self._connect()).close()
                pool: AsyncConnectionPool[Connection] = AsyncConnectionPool(
                    self._url,
                    min_size=1,
                    max_size=self._max_connections,
                    kwargs=self._connection_options(),
                    timeout=self._connect_timeout,
                    open=False,
                    name=f"agents-run-{self.schema}",
                    configure=self._track,
                )
                try:
                    await pool.open(wait=True, timeout=self._connect_timeout)
                except BaseException as error:
                    # Its worker tasks run from open() on, ignore cancellation and stop only when
                    # the pool closes: close it, also when cancelled, or they outlive it (and
                    # hang asyncio.run, which waits for every task it cancelled).
                    await pool.close(timeout=0)
                    if isinstance(error, psycopg.OperationalError):
                        raise self._unavailable(error) from None
                    raise
                self._pool = pool
            return self._pool

    async def _track(self, connection: Connection) -> None:
        set_json_loads(load_json, connection)
        self._pooled.add(connection)

    async def _connect(self) -> Connection:
        """A connection of its own, bounded by the connect timeout."""
        try:
            async with asyncio.timeout(self._connect_timeout):
                return await psycopg.AsyncConnection.connect(
                    self._url, **self._connection_options()
                )
        except (psycopg.OperationalError, TimeoutError) as error:
            raise self._unavailable(error) from None

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[Connection]:
        pool = await self._opened_pool()
        call_timeout = self._connect_timeout * CALL_TIMEOUTS
        bound = asyncio.timeout(call_timeout)
        try:
            async with pool.connection() as connection, bound:
                yield connection
        except TimeoutError as error:
            if not bound.expired():
                raise
            # The pool drops the connection: psycopg cancelled its query, or closed it.
            raise self._unavailable(f"no reply within {call_timeout:g} s") from error
        except (psycopg.errors.UndefinedTable, psycopg.errors.InvalidSchemaName):
            raise self._schema_missing() from None
        except psycopg.OperationalError as error:
            # After a server restart every idle connection is stale: replace them all now,
            # so that one call fails instead of one per pooled connection.
            with contextlib.suppress(Exception):
                async with asyncio.timeout(self._connect_timeout):
                    await pool.check()
            raise self._unavailable(error) from None

    def _unavailable(self, error: BaseException | str) -> InfraUnavailable:
        text = error if isinstance(error, str) else str(error) or type(error).__name__
        detail = scrub(" ".join(text.split()), self._secrets)
        return InfraUnavailable(
            f"PostgreSQL at {self._display_url} is unavailable ({detail}; connect timeout "
            f"{self._connect_timeout:g} s): check that the server runs and accepts this user, "
            "that AGENTS_RUN_STORE_URL points to it, or raise AGENTS_RUN_CONNECT_TIMEOUT"
        )

    def _schema_missing(self) -> InfraConfigError:
        return InfraConfigError(
            f"PostgreSQL at {self._display_url} has no agents-run tables in schema "
            f"{self.schema!r}: run `agents-run db init` with the same AGENTS_RUN_STORE_URL"
        )

    def _closed_error(self) -> InfraUnavailable:
        return InfraUnavailable(f"{self!r} was closed (aclose): build a new store to go on")


def answered_promptly(
    method: Callable[Concatenate[Store, P], Coroutine[Any, Any, T]],
) -> Callable[Concatenate[Store, P], Coroutine[Any, Any, T]]:
    """The store call runs in a task of its own; its caller gets ``InfraUnavailable`` at the
    call's deadline, or its own cancellation, at once. Cut off at its deadline, the call is
    cancelled behind it (psycopg cancels the query on the server: up to 10 s more on a dead
    network); left by a cancelled caller it runs to its end, unless it is still opening the
    pool, which is then closed."""

    @functools.wraps(method)
    async def call(self: Store, /, *args: P.args, **kwargs: P.kwargs) -> T:
        task = asyncio.ensure_future(method(self, *args, **kwargs))
        try:
            done, _ = await asyncio.wait({task}, timeout=self._connect_timeout * CALL_TIMEOUTS)
        except asyncio.CancelledError:
            if self._pool is None:
                _abandon(task)  # still opening the pool: closed with it, or its tasks outlive it
            else:
                # Let it end on its own (within its call bound): a query cancelled mid-call
                # costs the server a cancel request and the pool a connection, which an app
                # that times out many calls (a health check) would run the pool dry with.
                task.add_done_callback(_retrieve_outcome)
            raise
        if not done:
            _abandon(task)
            raise self._unavailable(f"no reply within {self._connect_timeout * CALL_TIMEOUTS:g} s")
        return task.result()

    return call


def _abandon(task: asyncio.Future[Any]) -> None:
    task.cancel()
    task.add_done_callback(_retrieve_outcome)


def _retrieve_outcome(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()  # its caller has gone: nobody else will retrieve it
