"""The run store on PostgreSQL: psycopg 3 (asyncio) with a connection pool.

Three tables in one schema (default ``agents_run``): ``runs``, ``events`` (primary key
``(run_id, seq)``) and ``outbox``. ``create_schema`` (``agents-run db init``) creates them; the
store never creates them on its own, so that production databases change only when asked to.

- An append locks its run's row (``SELECT ... FOR UPDATE``), so appends to one run take their seqs
  one after another and commit in seq order, from any number of processes.
- A claim is a transaction holding its outbox rows with ``FOR UPDATE SKIP LOCKED``: publishers
  never share rows, and a publisher that dies releases its rows with its connection.
- Every append sends ``NOTIFY <schema>_outbox`` on commit; ``wait_for_outbox`` listens on a
  connection of its own, so publishers sleep until there is work.

Constructing the store does no I/O: the pool opens on first use, within the running event loop,
and every wait for a connection is bounded by ``connect_timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import math
import re
import time
import weakref
from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus
from psycopg.rows import TupleRow
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from agents_run.adapters.postgres_cancel_listener import CancelListener
from agents_run.domain.events import Run, RunEvent, RunStatus, status_after
from agents_run.domain.journal import StepKind, StepRecord, check_step_can_be_recorded
from agents_run.domain.json_data import JsonObject, ensure_json_object
from agents_run.errors import (
    InfraConfigError,
    InfraUnavailable,
    InvalidArgument,
    RunNotFound,
    StaleRunState,
)
from agents_run.ports import OutboxRow
from agents_run.redaction import redact, scrub, secrets_of

DEFAULT_SCHEMA = "agents_run"
# Lower case so that psql users need no quotes; short enough for the ``_outbox`` channel suffix.
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,55}$")
_LIVE_STATUSES = [status.value for status in RunStatus if not status.is_terminal]

Connection = psycopg.AsyncConnection[TupleRow]


class _Statements:
    """Every statement the store runs, with the schema name quoted once."""

    def __init__(self, schema: str) -> None:
        def q(text: str) -> sql.Composed:
            return sql.SQL(text).format(s=sql.Identifier(schema))

        # Literals, not a parameter: the planner uses the partial index only for a predicate
        # it can see at planning time. (Status values are fixed identifiers: nothing to quote.)
        live_statuses = "(" + ", ".join(f"'{status}'" for status in _LIVE_STATUSES) + ")"
        run_columns = "id, agent, input, status, cancel_requested, last_seq, created_at, updated_at"

        self.schema = [
            q("CREATE SCHEMA IF NOT EXISTS {s}"),
            q(
                "CREATE TABLE IF NOT EXISTS {s}.runs ("
                " id text PRIMARY KEY,"
                " agent text NOT NULL,"
                " input jsonb NOT NULL,"
                " status text NOT NULL,"
                " cancel_requested boolean NOT NULL DEFAULT false,"
                " last_seq integer NOT NULL DEFAULT 0,"
                " created_at timestamptz NOT NULL,"
                " updated_at timestamptz NOT NULL)"
            ),
            q(
                "CREATE TABLE IF NOT EXISTS {s}.events ("
                " run_id text NOT NULL REFERENCES {s}.runs (id) ON DELETE CASCADE,"
                " seq integer NOT NULL,"
                " type text NOT NULL,"
                " data jsonb NOT NULL,"
                " PRIMARY KEY (run_id, seq))"
            ),
            q(
                "CREATE TABLE IF NOT EXISTS {s}.steps ("
                " run_id text NOT NULL REFERENCES {s}.runs (id) ON DELETE CASCADE,"
                " idx integer NOT NULL,"
                " attempt integer NOT NULL,"
                " kind text NOT NULL,"
                " name text NOT NULL,"
                " result jsonb NOT NULL,"
                " PRIMARY KEY (run_id, idx))"
            ),
            q(
                "CREATE TABLE IF NOT EXISTS {s}.outbox ("
                " id bigserial PRIMARY KEY,"
                " run_id text NOT NULL,"
                " seq integer NOT NULL,"
                " published_at timestamptz,"
                " FOREIGN KEY (run_id, seq) REFERENCES {s}.events ON DELETE CASCADE)"
            ),
            q(
                "CREATE INDEX IF NOT EXISTS outbox_pending ON {s}.outbox (id)"
                " WHERE published_at IS NULL"
            ),
            q(
                "CREATE INDEX IF NOT EXISTS outbox_pending_by_run ON {s}.outbox (run_id, id)"
                " WHERE published_at IS NULL"
            ),
            q(
                "CREATE INDEX IF NOT EXISTS runs_live_by_update ON {s}.runs"
                f' (updated_at, id COLLATE "C") WHERE status IN {live_statuses}'
            ),
        ]
        self.create_run = q(
            "INSERT INTO {s}.runs"
            " (id, agent, input, status, cancel_requested, last_seq, created_at, updated_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
        )
        self.get_run = q(f"SELECT {run_columns} FROM {{s}}.runs WHERE id = %s")
        # id in byte order (COLLATE "C"), as the other stores order ties.
        self.list_stale_runs = q(
            f"SELECT {run_columns} FROM {{s}}.runs WHERE status IN {live_statuses}"
            ' AND updated_at < %s ORDER BY updated_at, id COLLATE "C" LIMIT %s'
        )
        self.run_exists = q("SELECT 1 FROM {s}.runs WHERE id = %s")
        self.lock_run = q("SELECT status, last_seq FROM {s}.runs WHERE id = %s FOR UPDATE")
        # One round trip: data-modifying CTEs always run, and NOTIFY is delivered on commit.
        self.append_event = q(
            "WITH appended AS ("
            "  INSERT INTO {s}.events (run_id, seq, type, data)"
            "  VALUES (%(run_id)s, %(seq)s, %(type)s, %(data)s) RETURNING run_id, seq),"
            " queued AS ("
            "  INSERT INTO {s}.outbox (run_id, seq) SELECT run_id, seq FROM appended),"
            " moved AS ("
            "  UPDATE {s}.runs SET status = %(status)s, last_seq = %(seq)s, updated_at = %(at)s"
            "  WHERE id = %(run_id)s)"
            " SELECT pg_notify(%(channel)s, '')"
        )
        self.read_events = q(
            "SELECT seq, type, data FROM {s}.events WHERE run_id = %s AND seq >= %s"
            " ORDER BY seq LIMIT %s"
        )
        # The NOTIFY tells listening workers at commit (see postgres_cancel_listener).
        self.request_cancel = q(
            "WITH flagged AS ("
            "  UPDATE {s}.runs SET cancel_requested = true, updated_at = %s"
            "  WHERE id = %s AND NOT cancel_requested AND status = ANY(%s) RETURNING id)"
            " SELECT id, pg_notify(%s, id) FROM flagged"
        )
        self.cancel_requested = q("SELECT cancel_requested FROM {s}.runs WHERE id = %s")
        # FOR SHARE: an append that would end the run waits for the step, or the step for it.
        self.get_run_for_share = q(f"SELECT {run_columns} FROM {{s}}.runs WHERE id = %s FOR SHARE")
        self.step_exists = q("SELECT 1 FROM {s}.steps WHERE run_id = %s AND idx = %s")
        self.record_step = q(
            "INSERT INTO {s}.steps (run_id, idx, attempt, kind, name, result)"
            " VALUES (%s, %s, %s, %s, %s, %s)"
        )
        self.read_steps = q(
            "SELECT idx, attempt, kind, name, result FROM {s}.steps WHERE run_id = %s ORDER BY idx"
        )
        pending = (
            "SELECT o.id, o.run_id, o.seq, e.type, e.data"
            " FROM {s}.outbox o JOIN {s}.events e USING (run_id, seq)"
            " WHERE o.published_at IS NULL"
        )
        self.count_pending_all = q("SELECT count(*) FROM {s}.outbox WHERE published_at IS NULL")
        self.count_pending_of_run = q(
            "SELECT count(*) FROM {s}.outbox WHERE published_at IS NULL AND run_id = %s"
        )
        self.pending_all = q(pending + " ORDER BY o.id")
        self.pending_of_run = q(pending + " AND o.run_id = %s ORDER BY o.id")
        claim = " ORDER BY o.id LIMIT %s FOR UPDATE OF o SKIP LOCKED"
        self.claim_all = q(pending + claim)
        self.claim_of_run = q(pending + " AND o.run_id = %s" + claim)
        self.mark_published = q("UPDATE {s}.outbox SET published_at = now() WHERE id = ANY(%s)")


@dataclass
class PostgresOutboxClaim:
    """Rows locked by one open transaction; marking them published updates them in it."""

    rows: Sequence[OutboxRow]
    _connection: Connection
    _statements: _Statements

    async def mark_published(self, rows: Sequence[OutboxRow]) -> None:
        if rows:
            await self._connection.execute(
                self._statements.mark_published, ([row.id for row in rows],)
            )


class PostgresRunStore:
    """``RunStorePort`` on PostgreSQL at ``url`` (``postgresql://`` or ``postgres://``)."""

    def __init__(
        self,
        url: str,
        *,
        schema: str = DEFAULT_SCHEMA,
        connect_timeout: float = 5.0,
        max_connections: int = 10,
    ) -> None:
        if not url.lower().startswith(("postgresql://", "postgres://")):
            # Only URLs: their password is found and redacted; a conninfo string's would not be.
            raise InvalidArgument(  # without the value: it may hold a password we cannot find
                "the PostgreSQL address is not a postgresql:// URL: write "
                "postgresql://user[:password]@host[:port]/database"
            )
        if not _SCHEMA_NAME.match(schema):
            raise InvalidArgument(
                f"schema name {schema!r} is malformed: use 1 to 56 lower-case letters, digits "
                "or underscores, not starting with a digit"
            )
        if not (math.isfinite(connect_timeout) and connect_timeout > 0):
            raise InvalidArgument(f"connect_timeout must be seconds > 0, got {connect_timeout!r}")
        if max_connections < 1:
            raise InvalidArgument(f"max_connections must be >= 1, got {max_connections!r}")
        self.schema = schema
        # Shown in pg_stat_activity, so operators see which deployment holds connections.
        self.application_name = f"agents-run:{schema}"
        self._url = url
        self._display_url = redact(url)
        self._secrets = secrets_of(url)
        self._channel = f"{schema}_outbox"
        self._connect_timeout = connect_timeout
        self._max_connections = max_connections
        self._statements = _Statements(schema)
        self._pool: AsyncConnectionPool[Connection] | None = None
        self._pooled: weakref.WeakSet[Connection] = weakref.WeakSet()
        self._pool_lock = asyncio.Lock()
        self._listener: Connection | None = None
        self._listener_lock = asyncio.Lock()
        self._cancel_listener = CancelListener(f"{schema}_cancel", self._listening_connection)
        self._closed = False

    def __repr__(self) -> str:
        return f"PostgresRunStore({self._display_url!r}, schema={self.schema!r})"

    # --- connections and errors -------------------------------------------------------------

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
        try:
            async with pool.connection() as connection:
                yield connection
        except (psycopg.errors.UndefinedTable, psycopg.errors.InvalidSchemaName):
            raise self._schema_missing() from None
        except psycopg.OperationalError as error:
            # After a server restart every idle connection is stale: replace them all now,
            # so that one call fails instead of one per pooled connection.
            with contextlib.suppress(Exception):
                async with asyncio.timeout(self._connect_timeout):
                    await pool.check()
            raise self._unavailable(error) from None

    def _unavailable(self, error: BaseException) -> InfraUnavailable:
        detail = scrub(" ".join(str(error).split()) or type(error).__name__, self._secrets)
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

    # --- the port ---------------------------------------------------------------------------

    async def create_schema(self) -> None:
        async with self._connection() as connection, connection.transaction():
            # Serialises concurrent `db init`s, which would otherwise race in the catalogs.
            await connection.execute(
                "SELECT pg_advisory_xact_lock(hashtext(%s))", (f"agents-run:{self.schema}",)
            )
            for statement in self._statements.schema:
                await connection.execute(statement)

    async def drop_schema(self) -> None:
        """Drop the schema and everything in it: for throwaway test namespaces, never production."""
        async with self._connection() as connection:
            await connection.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(self.schema))
            )

    async def create_run(self, run: Run) -> None:
        run_input = ensure_json_object(run.input, "run input")
        try:
            async with self._connection() as connection:
                await connection.execute(
                    self._statements.create_run,
                    (
                        run.id,
                        run.agent,
                        Jsonb(run_input),
                        run.status.value,
                        run.cancel_requested,
                        run.last_seq,
                        run.created_at,
                        run.updated_at,
                    ),
                )
        except psycopg.errors.UniqueViolation:
            raise InvalidArgument(f"run {run.id!r} already exists") from None

    async def get_run(self, run_id: str) -> Run:
        async with self._connection() as connection:
            cursor = await connection.execute(self._statements.get_run, (run_id,))
            row = await cursor.fetchone()
        if row is None:
            raise RunNotFound(run_id)
        return _run(row)

    async def append_event(
        self,
        run_id: str,
        type: str,
        data: JsonObject,
        *,
        at: datetime,
        expected_status: RunStatus | None = None,
    ) -> RunEvent:
        async with self._connection() as connection, connection.transaction():
            cursor = await connection.execute(self._statements.lock_run, (run_id,))
            row = await cursor.fetchone()
            if row is None:
                raise RunNotFound(run_id)
            status, last_seq = RunStatus(row[0]), row[1]
            if expected_status is not None and status != expected_status:
                raise StaleRunState(
                    f"run {run_id!r} is {status.value}, not {expected_status.value}"
                )
            new_status = status_after(status, type)
            event = RunEvent(run_id=run_id, seq=last_seq + 1, type=type, data=copy.deepcopy(data))
            await connection.execute(
                self._statements.append_event,
                {
                    "run_id": run_id,
                    "seq": event.seq,
                    "type": type,
                    "data": Jsonb(event.data),
                    "status": new_status.value,
                    "at": at,
                    "channel": self._channel,
                },
            )
        return event

    async def read_events(
        self, run_id: str, from_seq: int = 1, limit: int | None = None
    ) -> list[RunEvent]:
        async with self._connection() as connection:
            cursor = await connection.execute(
                self._statements.read_events, (run_id, from_seq, limit)
            )
            rows = await cursor.fetchall()
            if not rows:
                await self._check_exists(connection, run_id)
        return [
            RunEvent(run_id=run_id, seq=seq, type=type_, data=data) for seq, type_, data in rows
        ]

    async def request_cancel(self, run_id: str, *, at: datetime) -> bool:
        async with self._connection() as connection:
            cursor = await connection.execute(
                self._statements.request_cancel,
                (at, run_id, _LIVE_STATUSES, self._cancel_listener.channel),
            )
            if await cursor.fetchone() is not None:
                return True
            await self._check_exists(connection, run_id)
        return False

    async def wait_for_cancel(self, run_id: str, timeout: float) -> bool:
        async def requested() -> bool:
            async with self._connection() as connection:
                cursor = await connection.execute(self._statements.cancel_requested, (run_id,))
                row = await cursor.fetchone()
            if row is None:
                raise RunNotFound(run_id)
            return bool(row[0])

        return await self._cancel_listener.wait(run_id, timeout, requested)

    async def _listening_connection(self) -> Connection:
        if self._closed:
            raise self._closed_error()
        return await self._connect()

    async def record_step(self, record: StepRecord) -> None:
        async with self._connection() as connection, connection.transaction():
            cursor = await connection.execute(self._statements.get_run_for_share, (record.run_id,))
            row = await cursor.fetchone()
            if row is None:
                raise RunNotFound(record.run_id)
            taken = await connection.execute(
                self._statements.step_exists, (record.run_id, record.index)
            )
            check_step_can_be_recorded(_run(row), record, await taken.fetchone() is not None)
            await connection.execute(
                self._statements.record_step,
                (
                    record.run_id,
                    record.index,
                    record.attempt,
                    record.kind.value,
                    record.name,
                    Jsonb(record.result),
                ),
            )

    async def read_steps(self, run_id: str) -> list[StepRecord]:
        async with self._connection() as connection:
            cursor = await connection.execute(self._statements.read_steps, (run_id,))
            rows = await cursor.fetchall()
            if not rows:
                await self._check_exists(connection, run_id)
        return [
            StepRecord(run_id, index, attempt, StepKind(kind), name, result)
            for index, attempt, kind, name, result in rows
        ]

    async def _check_exists(self, connection: Connection, run_id: str) -> None:
        cursor = await connection.execute(self._statements.run_exists, (run_id,))
        if await cursor.fetchone() is None:
            raise RunNotFound(run_id)

    async def list_stale_runs(self, *, updated_before: datetime, limit: int = 100) -> list[Run]:
        async with self._connection() as connection:
            cursor = await connection.execute(
                self._statements.list_stale_runs, (updated_before, limit)
            )
            return [_run(row) for row in await cursor.fetchall()]

    async def pending_outbox(self, run_id: str | None = None) -> list[OutboxRow]:
        async with self._connection() as connection:
            if run_id is None:
                cursor = await connection.execute(self._statements.pending_all)
            else:
                cursor = await connection.execute(self._statements.pending_of_run, (run_id,))
            return _outbox_rows(await cursor.fetchall())

    async def count_pending_outbox(self, run_id: str | None = None) -> int:
        async with self._connection() as connection:
            if run_id is None:
                cursor = await connection.execute(self._statements.count_pending_all)
            else:
                cursor = await connection.execute(self._statements.count_pending_of_run, (run_id,))
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    @asynccontextmanager
    async def claim_outbox(
        self, *, run_id: str | None = None, limit: int = 500
    ) -> AsyncIterator[PostgresOutboxClaim]:
        async with self._connection() as connection:
            failure: BaseException | None = None
            async with connection.transaction():
                if run_id is None:
                    cursor = await connection.execute(self._statements.claim_all, (limit,))
                else:
                    cursor = await connection.execute(
                        self._statements.claim_of_run, (run_id, limit)
                    )
                rows = _outbox_rows(await cursor.fetchall())
                try:
                    yield PostgresOutboxClaim(rows, connection, self._statements)
                except BaseException as error:
                    if connection.info.transaction_status != TransactionStatus.INTRANS:
                        raise  # the transaction failed: roll back
                    # Commit anyway: what was published stays marked, the rest is unlocked.
                    failure = error
            if failure is not None:
                raise failure

    async def wait_for_outbox(self, timeout: float) -> bool:
        # One waiter at a time: the listening connection serves one caller, and a second
        # caller must not open a second listener.
        deadline = time.monotonic() + timeout
        try:
            async with asyncio.timeout(timeout):
                await self._listener_lock.acquire()
        except TimeoutError:
            return False
        try:
            return await self._wait_for_notification(max(0.0, deadline - time.monotonic()))
        finally:
            self._listener_lock.release()

    async def _wait_for_notification(self, timeout: float) -> bool:
        listener = self._listener
        if listener is None or listener.closed:
            self._listener = await self._listen()
            return True  # rows appended before we listened are not announced
        try:
            async with aclosing(listener.notifies(timeout=timeout, stop_after=1)) as notes:
                woken = [note async for note in notes]
            if woken:
                # Collapse what else arrived meanwhile into this one wake-up.
                async with aclosing(listener.notifies(timeout=0)) as more:
                    async for _ in more:
                        pass
            return bool(woken)
        except psycopg.OperationalError:
            # A lost listener may have missed notifications: report work, reconnect next time.
            await listener.close()
            self._listener = None
            return True

    async def _listen(self) -> Connection:
        if self._closed:
            raise self._closed_error()
        connection = await self._connect()
        try:
            async with asyncio.timeout(self._connect_timeout):
                await connection.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
        except (psycopg.OperationalError, TimeoutError) as error:
            await connection.close()
            raise self._unavailable(error) from None
        return connection

    async def aclose(self) -> None:
        self._closed = True
        await self._cancel_listener.aclose()
        listener, self._listener = self._listener, None
        if listener is not None:
            await listener.close()
        async with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await pool.close()
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is None or task.cancelling():
                    raise
                # Not us: a loop shutting down (asyncio.run, asyncio.Runner.close) cancels every
                # task, the pool's workers too, before closing async generators, where a test
                # harness may close this store. pool.close() gave up waiting for them before
                # closing its connections: close them here.
                for connection in list(self._pooled):
                    await connection.close()


def _run(row: TupleRow) -> Run:
    id_, agent, run_input, status, cancel_requested, last_seq, created_at, updated_at = row
    return Run(
        id=id_,
        agent=agent,
        input=run_input,
        status=RunStatus(status),
        created_at=created_at,
        updated_at=updated_at,
        last_seq=last_seq,
        cancel_requested=cancel_requested,
    )


def _outbox_rows(rows: list[TupleRow]) -> list[OutboxRow]:
    return [
        OutboxRow(id=id_, event=RunEvent(run_id=run_id, seq=seq, type=type_, data=data))
        for id_, run_id, seq, type_, data in rows
    ]
