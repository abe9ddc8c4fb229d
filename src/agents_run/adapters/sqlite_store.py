"""The run store on SQLite (standard library ``sqlite3``): durability on one machine, no server.

The same tables as the PostgreSQL store, in one database file in WAL mode, created on first use
(a file has no separate administrator; ``create_schema`` does the same on demand).

- Each store owns one connection, used by one worker thread: its calls run one at a time and
  never block the event loop; a call cancelled by its caller still finishes in that thread.
- Appends are ``BEGIN IMMEDIATE`` transactions, so writers from several processes take turns;
  a lock held longer than ``busy_timeout`` seconds raises ``InfraUnavailable``.
- SQLite has no ``SKIP LOCKED``: a claim marks its rows with a token and a lease. Rows are
  released when the claim ends, or when the lease runs out if its publisher died.
- ``wait_for_outbox`` wakes at once for appends through this store and otherwise polls the
  newest outbox id every ``poll_interval`` seconds (other processes cannot signal this one).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from agents_run.adapters.sql_rows import (
    LIVE_STATUSES,
    RUN_COLUMNS,
    STEP_COLUMNS,
    events_from_rows,
    outbox_rows_from_rows,
    run_from_row,
    run_values,
    step_values,
    steps_from_rows,
)
from agents_run.adapters.sqlite_connections import SqliteConnections
from agents_run.arguments import require_seconds
from agents_run.domain.events import Run, RunEvent, RunStatus, next_run_event
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
from agents_run.errors import InvalidArgument, RunNotFound
from agents_run.ports import OutboxRow

_PENDING = (
    "SELECT o.id, o.run_id, o.seq, e.type, e.data FROM outbox o"
    " JOIN events e ON e.run_id = o.run_id AND e.seq = o.seq WHERE o.published_at IS NULL"
)
_CLAIMABLE = " AND (o.claimed_by IS NULL OR o.claim_expires < ?)"
# Timestamps are ISO text with an offset: julianday() compares instants (to the millisecond)
# whatever the offset. The literal statuses match the partial index runs_live_by_update.
_STALE_RUNS = (
    f"SELECT {RUN_COLUMNS} FROM runs WHERE status IN {LIVE_STATUSES}"
    " AND julianday(updated_at) < julianday(?) ORDER BY julianday(updated_at), id LIMIT ?"
)
_LAPSED_LEASES = (
    f"SELECT {RUN_COLUMNS} FROM runs WHERE status = 'running'"
    " AND julianday(lease_until) <= julianday(?) ORDER BY julianday(lease_until), id LIMIT ?"
)


@dataclass
class SqliteOutboxClaim:
    rows: Sequence[OutboxRow]
    _store: SqliteRunStore
    _token: str

    async def mark_published(self, rows: Sequence[OutboxRow]) -> None:
        if rows:
            await self._store._call(self._store._mark_published, self._token, [r.id for r in rows])


class SqliteRunStore(SqliteConnections):
    """``RunStorePort`` on an SQLite file."""

    def __init__(
        self,
        path: str | Path,
        *,
        busy_timeout: float = 5.0,
        claim_lease: float = 60.0,
        poll_interval: float = 0.05,
        clock: Callable[[], float] = time.time,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
    ) -> None:
        if not str(path) or str(path) == ":memory:":
            raise InvalidArgument(
                f"SQLite path {str(path)!r} is not a file: give a file path, which every "
                "process of the deployment opens (use memory:// for a store in memory)"
            )
        require_seconds(busy_timeout, "busy_timeout", positive=True)
        require_seconds(claim_lease, "claim_lease", positive=True)
        require_seconds(poll_interval, "poll_interval", positive=True)
        self.path = Path(path)
        self.max_payload_bytes = check_payload_limit(max_payload_bytes)
        self._busy_timeout = busy_timeout
        self._claim_lease = claim_lease
        self._poll_interval = poll_interval
        self._clock = clock  # wall-clock seconds, for claim leases shared between processes
        self._connection: sqlite3.Connection | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="agents-run-sqlite")
        self._closed = False
        self._newest_outbox_id: int | None = None
        self._outbox_appended = asyncio.Event()
        self._cancel_requested = asyncio.Event()  # by this store: waiters re-read at once

    def __repr__(self) -> str:
        return f"SqliteRunStore({str(self.path)!r})"

    # --- the port ---------------------------------------------------------------------------

    async def create_schema(self) -> None:
        await self._call(self._opened)

    async def claim_deployment(self, key_prefix: str, token: str) -> tuple[str, str]:
        """As ``PostgresRunStore.claim_deployment``."""

        def claim(connection: sqlite3.Connection) -> tuple[str, str]:
            connection.execute(
                "INSERT OR IGNORE INTO deployment (one_row, key_prefix, token) VALUES (1, ?, ?)",
                (key_prefix, token),
            )
            row = connection.execute("SELECT key_prefix, token FROM deployment").fetchone()
            return row[0], row[1]

        return await self._call(self._transaction, claim)

    async def create_run(self, run: Run) -> None:
        ensure_json_object(run.input, "run input")
        limit = self.max_payload_bytes
        values = run_values(
            run, dump_json=lambda value: json_text(value, "run input", limit),
            dump_time=datetime.isoformat,
        )  # fmt: skip

        def insert(connection: sqlite3.Connection) -> None:
            try:
                connection.execute(
                    f"INSERT INTO runs ({RUN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    values,
                )
            except sqlite3.IntegrityError:
                raise InvalidArgument(f"run {run.id!r} already exists") from None

        await self._call(self._transaction, insert)

    async def get_run(self, run_id: str) -> Run:
        rows = await self._call(
            self._read, f"SELECT {RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,)
        )
        if not rows:
            raise RunNotFound(run_id)
        return _run(rows[0])

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
        def append(connection: sqlite3.Connection) -> RunEvent:
            row = connection.execute(
                "SELECT status, last_seq, attempt, cancel_requested FROM runs WHERE id = ?",
                (run_id,),
            ).fetchone()
            if row is None:
                raise RunNotFound(run_id)
            appended = next_run_event(
                run_id,
                RunStatus(row[0]),
                row[1],
                type,
                data,
                expected_status=expected_status,
                current_attempt=row[2],
                attempt=attempt,
                max_payload_bytes=self.max_payload_bytes,
                cancel_requested=bool(row[3]),
            )
            event = appended.event
            connection.execute(
                "INSERT INTO events (run_id, seq, type, data) VALUES (?, ?, ?, ?)",
                (run_id, event.seq, event.type, appended.data_json),
            )
            connection.execute(
                "INSERT INTO outbox (run_id, seq) VALUES (?, ?)", (run_id, event.seq)
            )
            connection.execute(
                "UPDATE runs SET status = ?, last_seq = ?, updated_at = ? WHERE id = ?",
                (appended.status.value, event.seq, at.isoformat(), run_id),
            )
            return event

        event = await self._call(self._transaction, append)
        self._outbox_appended.set()
        return event

    async def read_events(
        self, run_id: str, from_seq: int = 1, limit: int | None = None
    ) -> list[RunEvent]:
        def read() -> list[tuple[Any, ...]]:
            rows = self._read(
                "SELECT seq, type, data FROM events WHERE run_id = ? AND seq >= ?"
                " ORDER BY seq LIMIT ?",
                (run_id, from_seq, -1 if limit is None else limit),
            )
            if not rows and not self._read("SELECT 1 FROM runs WHERE id = ?", (run_id,)):
                raise RunNotFound(run_id)
            return rows

        return events_from_rows(run_id, await self._call(read), load_json=json.loads)

    async def request_cancel(self, run_id: str, *, at: datetime) -> bool:
        def cancel(connection: sqlite3.Connection) -> bool:
            cursor = connection.execute(
                "UPDATE runs SET cancel_requested = 1, updated_at = ?"
                f" WHERE id = ? AND NOT cancel_requested AND status IN {LIVE_STATUSES}",
                (at.isoformat(), run_id),
            )
            if cursor.rowcount:
                return True
            if connection.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone():
                return False
            raise RunNotFound(run_id)

        requested = await self._call(self._transaction, cancel)
        if requested:
            self._cancel_requested.set()
            self._cancel_requested.clear()
        return requested

    async def wait_for_cancel(self, run_id: str, timeout: float) -> bool:
        """Reads the flag every ``poll_interval`` s, at once after a request through this store."""
        deadline = time.monotonic() + timeout
        while True:
            woken = asyncio.ensure_future(self._cancel_requested.wait())
            try:
                if (await self.get_run(run_id)).cancel_requested:
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                await asyncio.wait([woken], timeout=min(self._poll_interval, remaining))
            finally:
                woken.cancel()

    async def record_step(self, record: StepRecord) -> None:
        check_step_result(record)

        def insert(connection: sqlite3.Connection) -> None:
            rows = connection.execute(
                f"SELECT {RUN_COLUMNS} FROM runs WHERE id = ?", (record.run_id,)
            ).fetchall()
            if not rows:
                raise RunNotFound(record.run_id)
            taken = connection.execute(
                "SELECT 1 FROM steps WHERE run_id = ? AND idx = ?", (record.run_id, record.index)
            ).fetchone()
            check_step_can_be_recorded(_run(rows[0]), record, taken is not None)
            connection.execute(
                f"INSERT INTO steps ({STEP_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                step_values(
                    record, dump_json=lambda _: step_result_json(record, self.max_payload_bytes)
                ),
            )

        await self._call(self._transaction, insert)

    async def read_steps(self, run_id: str) -> list[StepRecord]:
        def read() -> list[tuple[Any, ...]]:
            rows = self._read(
                f"SELECT {STEP_COLUMNS} FROM steps WHERE run_id = ? ORDER BY idx", (run_id,)
            )
            if not rows and not self._read("SELECT 1 FROM runs WHERE id = ?", (run_id,)):
                raise RunNotFound(run_id)
            return rows

        return steps_from_rows(await self._call(read), load_json=json.loads)

    async def acquire_lease(self, run_id: str, *, at: datetime, until: datetime) -> Run | None:
        def acquire(connection: sqlite3.Connection) -> Run | None:
            rows = connection.execute(
                "UPDATE runs SET attempt = attempt + 1, lease_until = ?"
                f" WHERE id = ? AND status IN {LIVE_STATUSES}"
                " AND (lease_until IS NULL OR julianday(lease_until) <= julianday(?))"
                f" RETURNING {RUN_COLUMNS}",
                (until.isoformat(), run_id, at.isoformat()),
            ).fetchall()
            if rows:
                return _run(rows[0])
            _check_exists(connection, run_id)
            return None

        return await self._call(self._transaction, acquire)

    async def renew_lease(self, run_id: str, attempt: int, *, until: datetime) -> bool:
        def renew(connection: sqlite3.Connection) -> bool:
            cursor = connection.execute(
                "UPDATE runs SET lease_until = ?"
                f" WHERE id = ? AND attempt = ? AND status IN {LIVE_STATUSES}",
                (until.isoformat(), run_id, attempt),
            )
            if cursor.rowcount:
                return True
            _check_exists(connection, run_id)
            return False

        return await self._call(self._transaction, renew)

    async def list_lapsed_leases(self, *, at: datetime, limit: int = 100) -> list[Run]:
        rows = await self._call(self._read, _LAPSED_LEASES, (at.isoformat(), limit))
        return [_run(row) for row in rows]

    async def list_stale_runs(self, *, updated_before: datetime, limit: int = 100) -> list[Run]:
        rows = await self._call(self._read, _STALE_RUNS, (updated_before.isoformat(), limit))
        return [_run(row) for row in rows]

    async def pending_outbox(self, run_id: str | None = None) -> list[OutboxRow]:
        if run_id is None:
            rows = await self._call(self._read, _PENDING + " ORDER BY o.id")
        else:
            rows = await self._call(
                self._read, _PENDING + " AND o.run_id = ? ORDER BY o.id", (run_id,)
            )
        return _outbox_rows(rows)

    async def count_pending_outbox(self, run_id: str | None = None) -> int:
        count = "SELECT count(*) FROM outbox WHERE published_at IS NULL"
        if run_id is None:
            rows = await self._call(self._read, count)
        else:
            rows = await self._call(self._read, count + " AND run_id = ?", (run_id,))
        return int(rows[0][0])

    async def delete_published_outbox(self, *, published_for: float, limit: int = 1000) -> int:
        def delete(connection: sqlite3.Connection) -> int:
            # julianday reads the stamps' UTC offsets; a day is 86,400 seconds.
            cursor = connection.execute(
                "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox"
                " WHERE published_at IS NOT NULL"
                " AND julianday(published_at) <= julianday('now') - ? / 86400.0"
                " ORDER BY id LIMIT ?)",
                (published_for, limit),
            )
            return cursor.rowcount

        return await self._call(self._transaction, delete)

    @asynccontextmanager
    async def claim_outbox(
        self, *, run_id: str | None = None, limit: int = 500
    ) -> AsyncIterator[SqliteOutboxClaim]:
        token = uuid.uuid4().hex
        rows = await self._call(self._transaction, lambda c: self._claim(c, token, run_id, limit))
        try:
            yield SqliteOutboxClaim(_outbox_rows(rows), self, token)
        finally:
            if rows:
                # Shielded: a cancelled publisher must still hand its rows back.
                await asyncio.shield(self._call(self._transaction, lambda c: _release(c, token)))

    def _claim(
        self, connection: sqlite3.Connection, token: str, run_id: str | None, limit: int
    ) -> list[tuple[Any, ...]]:
        now = self._clock()
        parameters: list[Any]
        if run_id is None:
            query, parameters = _PENDING + _CLAIMABLE, [now]
        else:
            query, parameters = _PENDING + " AND o.run_id = ?" + _CLAIMABLE, [run_id, now]
        rows = connection.execute(query + " ORDER BY o.id LIMIT ?", [*parameters, limit]).fetchall()
        connection.executemany(
            "UPDATE outbox SET claimed_by = ?, claim_expires = ? WHERE id = ?",
            [(token, now + self._claim_lease, row[0]) for row in rows],
        )
        return rows

    def _mark_published(self, token: str, ids: list[int]) -> None:
        published_at = datetime.now().astimezone().isoformat()
        self._transaction(
            lambda connection: connection.executemany(
                "UPDATE outbox SET published_at = ?, claimed_by = NULL, claim_expires = NULL"
                " WHERE id = ? AND claimed_by = ?",
                [(published_at, id_, token) for id_ in ids],
            )
        )

    async def wait_for_outbox(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            self._outbox_appended.clear()
            newest = (await self._call(self._read, "SELECT coalesce(max(id), 0) FROM outbox"))[0][0]
            if self._newest_outbox_id is None or newest > self._newest_outbox_id:
                self._newest_outbox_id = newest
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._outbox_appended.wait(), min(self._poll_interval, remaining)
                )

    async def aclose(self) -> None:
        if self._closed:
            return
        await self._call(self._close_connection)
        self._closed = True
        self._thread.shutdown(wait=False)


def _release(connection: sqlite3.Connection, token: str) -> None:
    connection.execute(
        "UPDATE outbox SET claimed_by = NULL, claim_expires = NULL"
        " WHERE claimed_by = ? AND published_at IS NULL",
        (token,),
    )


def _check_exists(connection: sqlite3.Connection, run_id: str) -> None:
    if connection.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is None:
        raise RunNotFound(run_id)


def _run(row: tuple[Any, ...]) -> Run:
    return run_from_row(row, load_json=json.loads, load_time=datetime.fromisoformat)


def _outbox_rows(rows: list[tuple[Any, ...]]) -> list[OutboxRow]:
    return outbox_rows_from_rows(rows, load_json=json.loads)
