"""The run store on PostgreSQL: psycopg 3 (asyncio) with a connection pool.

Three tables in one schema (default ``agents_run``): ``runs``, ``events`` (primary key
``(run_id, seq)``) and ``outbox``. ``create_schema`` (``agents-run db init``) creates them; the
store never creates them on its own, so that production databases change only when asked to.

- An append changes its run's row only where the run is in the state its rule was checked
  against (one statement, one round trip where the handle knows that state; else under
  ``SELECT ... FOR UPDATE``), so appends to one run take their seqs one after another and
  commit in seq order, from any number of processes.
- A claim is a transaction holding its outbox rows with ``FOR UPDATE SKIP LOCKED``: publishers
  never share rows, and a publisher that dies releases its rows with its connection.
- Every append sends ``NOTIFY <schema>_outbox`` on commit; ``wait_for_outbox`` listens on a
  connection of its own, so publishers sleep until there is work.

Constructing the store does no I/O: the pool opens on first use, within the running event loop,
and every wait for a connection is bounded by ``connect_timeout``.
"""

from __future__ import annotations

import asyncio
import re
import time
import weakref
from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus
from psycopg_pool import AsyncConnectionPool

from agents_run.adapters.postgres_cancel_listener import CancelListener
from agents_run.adapters.postgres_connections import (
    Connection,
    PostgresConnections,
    answered_promptly,
)
from agents_run.adapters.postgres_statements import (
    KNOWN_RUNS_LIMIT,
    KnownRun,
    Statements,
    append_parameters,
    as_jsonb,
)
from agents_run.adapters.sql_rows import (
    LIVE_STATUSES,
    events_from_rows,
    outbox_rows_from_rows,
    run_from_row,
    run_values,
    step_values,
    steps_from_rows,
)
from agents_run.arguments import require_positive_int, require_seconds
from agents_run.domain.events import NextRunEvent, Run, RunEvent, RunStatus, next_run_event
from agents_run.domain.journal import (
    StepRecord,
    check_step_can_be_recorded,
    check_step_result,
    step_result_json,
)
from agents_run.domain.json_data import (
    DEFAULT_MAX_PAYLOAD_BYTES,
    JsonObject,
    check_payload_limit,
    ensure_json_object,
    json_text,
)
from agents_run.errors import (
    AgentsRunError,
    InvalidArgument,
    RunNotFound,
)
from agents_run.ports import OutboxRow
from agents_run.redaction import redact, secrets_of

DEFAULT_SCHEMA = "agents_run"
# Lower case so that psql users need no quotes; short enough for the ``_outbox`` channel suffix.
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,55}$")


@dataclass
class PostgresOutboxClaim:
    """Rows locked by one open transaction; marking them published updates them in it."""

    rows: Sequence[OutboxRow]
    _connection: Connection
    _statements: Statements

    async def mark_published(self, rows: Sequence[OutboxRow]) -> None:
        if rows:
            await self._connection.execute(
                self._statements.mark_published, ([row.id for row in rows],)
            )


class PostgresRunStore(PostgresConnections):
    """``RunStorePort`` on PostgreSQL at ``url`` (``postgresql://`` or ``postgres://``)."""

    def __init__(
        self,
        url: str,
        *,
        schema: str = DEFAULT_SCHEMA,
        connect_timeout: float = 5.0,
        max_connections: int = 10,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
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
        require_seconds(connect_timeout, "connect_timeout", positive=True)
        require_positive_int(max_connections, "max_connections")
        self.schema = schema
        self.max_payload_bytes = check_payload_limit(max_payload_bytes)
        # Shown in pg_stat_activity, so operators see which deployment holds connections.
        self.application_name = f"agents-run:{schema}"
        self._url = url
        self._display_url = redact(url)
        self._secrets = secrets_of(url)
        self._channel = f"{schema}_outbox"
        self._cancel_listener = CancelListener(f"{schema}_cancel", self._listening_connection)
        self._connect_timeout = connect_timeout
        self._max_connections = max_connections
        self._statements = Statements(schema)
        self._pool: AsyncConnectionPool[Connection] | None = None
        self._pooled: weakref.WeakSet[Connection] = weakref.WeakSet()
        self._pool_lock = asyncio.Lock()
        self._listener: Connection | None = None
        self._listener_lock = asyncio.Lock()
        self._closed = False
        # What this handle last wrote to each run it appends to (see append_event).
        self._known_runs: dict[str, KnownRun] = {}

    def __repr__(self) -> str:
        return f"PostgresRunStore({self._display_url!r}, schema={self.schema!r})"

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

    async def claim_deployment(self, key_prefix: str, token: str) -> tuple[str, str]:
        """Record ``key_prefix`` and ``token`` as this store's deployment where none is yet;
        return the ``(key_prefix, token)`` recorded, this call's or an earlier one's."""
        async with self._connection() as connection, connection.transaction():
            await connection.execute(self._statements.claim_deployment, (key_prefix, token))
            cursor = await connection.execute(self._statements.read_deployment)
            row = await cursor.fetchone()
        assert row is not None  # inserted, or there already
        return row[0], row[1]

    @answered_promptly
    async def create_run(self, run: Run) -> None:
        ensure_json_object(run.input, "run input")
        limit = self.max_payload_bytes
        values = run_values(
            run, dump_json=lambda value: as_jsonb(json_text(value, "run input", limit)),
            dump_time=lambda when: when,
        )  # fmt: skip
        try:
            async with self._connection() as connection:
                await connection.execute(self._statements.create_run, values)
        except psycopg.errors.UniqueViolation:
            raise InvalidArgument(f"run {run.id!r} already exists") from None

    @answered_promptly
    async def get_run(self, run_id: str) -> Run:
        async with self._connection() as connection:
            cursor = await connection.execute(self._statements.get_run, (run_id,))
            row = await cursor.fetchone()
        if row is None:
            raise RunNotFound(run_id)
        return run_from_row(row)

    @answered_promptly
    async def append_event(
        self,
        run_id: str,
        type: str,
        data: JsonObject,
        *,
        at: datetime,
        expected_status: RunStatus | None = None,
        attempt: int | None = None,
    ) -> RunEvent:
        # One round trip where this handle knows the run's state (a worker appending to the run
        # it holds): the rule (next_run_event) is checked against that state, and the statement
        # writes only where the stored run is still in it. Otherwise, or where another writer
        # moved the run, the locked transaction below (four round trips) decides.
        def next_event(known: KnownRun) -> NextRunEvent:
            return next_run_event(
                run_id, known.status, known.last_seq, type, data,
                expected_status=expected_status, current_attempt=known.attempt, attempt=attempt,
                max_payload_bytes=self.max_payload_bytes, cancel_requested=known.cancel_requested,
            )  # fmt: skip

        known = self._known_runs.get(run_id)
        if known is not None:
            try:
                appended = next_event(known)
            except AgentsRunError:
                pass  # perhaps only our knowledge is stale: the locked path reads the run
            else:
                async with self._connection() as connection:
                    if await self._append_if_unchanged(connection, known, appended, at):
                        return appended.event
        self._known_runs.pop(run_id, None)
        async with self._connection() as connection, connection.transaction():
            cursor = await connection.execute(self._statements.lock_run, (run_id,))
            row = await cursor.fetchone()
            if row is None:
                raise RunNotFound(run_id)
            known = KnownRun(RunStatus(row[0]), row[1], row[2], row[3])
            appended = next_event(known)
            await self._append_if_unchanged(connection, known, appended, at)
        return appended.event

    async def _append_if_unchanged(
        self, connection: Connection, known: KnownRun, appended: NextRunEvent, at: datetime
    ) -> bool:
        """Write ``appended`` (event, outbox row, run, NOTIFY) in one statement where the run is
        still ``known``; remember its new state. False where it was not (nothing written)."""
        event = appended.event
        cursor = await connection.execute(
            self._statements.append_event, append_parameters(known, appended, at, self._channel)
        )
        if await cursor.fetchone() is None:
            self._known_runs.pop(event.run_id, None)
            return False
        if len(self._known_runs) >= KNOWN_RUNS_LIMIT:
            self._known_runs.clear()  # a cache, not the truth: losing it costs round trips only
        if not appended.status.is_terminal:
            self._known_runs[event.run_id] = KnownRun(
                appended.status, event.seq, known.attempt, known.cancel_requested
            )
        return True

    @answered_promptly
    async def acquire_lease(self, run_id: str, *, at: datetime, until: datetime) -> Run | None:
        async with self._connection() as connection:
            cursor = await connection.execute(
                self._statements.acquire_lease, {"run_id": run_id, "at": at, "until": until}
            )
            row = await cursor.fetchone()
            if row is None:
                await self._check_exists(connection, run_id)
                return None
        return run_from_row(row)

    @answered_promptly
    async def renew_lease(self, run_id: str, attempt: int, *, until: datetime) -> bool:
        async with self._connection() as connection:
            cursor = await connection.execute(
                self._statements.renew_lease, (until, run_id, attempt)
            )
            if await cursor.fetchone() is not None:
                return True
            await self._check_exists(connection, run_id)
        return False

    @answered_promptly
    async def list_lapsed_leases(self, *, at: datetime, limit: int = 100) -> list[Run]:
        async with self._connection() as connection:
            cursor = await connection.execute(self._statements.list_lapsed_leases, (at, limit))
            return [run_from_row(row) for row in await cursor.fetchall()]

    @answered_promptly
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
        return events_from_rows(run_id, rows)

    @answered_promptly
    async def request_cancel(self, run_id: str, *, at: datetime) -> bool:
        async with self._connection() as connection:
            cursor = await connection.execute(
                self._statements.request_cancel,
                (at, run_id, list(LIVE_STATUSES), self._cancel_listener.channel),
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

    @answered_promptly
    async def record_step(self, record: StepRecord) -> None:
        check_step_result(record)
        limit = self.max_payload_bytes
        values = step_values(record, dump_json=lambda _: as_jsonb(step_result_json(record, limit)))
        async with self._connection() as connection:  # one statement: one round trip
            cursor = await connection.execute(
                self._statements.record_step, (record.run_id, *values, record.attempt)
            )
            row = await cursor.fetchone()
        if row is None:
            raise RunNotFound(record.run_id)
        *run_row, recorded = row
        if not recorded:
            check_step_can_be_recorded(run_from_row(tuple(run_row)), record, index_taken=True)

    @answered_promptly
    async def read_steps(self, run_id: str) -> list[StepRecord]:
        async with self._connection() as connection:
            cursor = await connection.execute(self._statements.read_steps, (run_id,))
            rows = await cursor.fetchall()
            if not rows:
                await self._check_exists(connection, run_id)
        return steps_from_rows(rows)

    async def _check_exists(self, connection: Connection, run_id: str) -> None:
        cursor = await connection.execute(self._statements.run_exists, (run_id,))
        if await cursor.fetchone() is None:
            raise RunNotFound(run_id)

    @answered_promptly
    async def list_stale_runs(self, *, updated_before: datetime, limit: int = 100) -> list[Run]:
        async with self._connection() as connection:
            cursor = await connection.execute(
                self._statements.list_stale_runs, (updated_before, limit)
            )
            return [run_from_row(row) for row in await cursor.fetchall()]

    @answered_promptly
    async def pending_outbox(self, run_id: str | None = None) -> list[OutboxRow]:
        async with self._connection() as connection:
            if run_id is None:
                cursor = await connection.execute(self._statements.pending_all)
            else:
                cursor = await connection.execute(self._statements.pending_of_run, (run_id,))
            return outbox_rows_from_rows(await cursor.fetchall())

    @answered_promptly
    async def count_pending_outbox(self, run_id: str | None = None) -> int:
        async with self._connection() as connection:
            if run_id is None:
                cursor = await connection.execute(self._statements.count_pending_all)
            else:
                cursor = await connection.execute(self._statements.count_pending_of_run, (run_id,))
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    @answered_promptly
    async def delete_published_outbox(self, *, published_for: float, limit: int = 1000) -> int:
        async with self._connection() as connection:
            cursor = await connection.execute(
                self._statements.delete_published, (published_for, limit)
            )
            return cursor.rowcount

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
                rows = outbox_rows_from_rows(await cursor.fetchall())
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
