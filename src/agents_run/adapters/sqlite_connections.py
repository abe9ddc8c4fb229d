"""The SQLite store's connection: one per store, opened on first use in the store's worker thread,
the schema created (and files made by earlier versions migrated) as it opens, write transactions,
reads, and the errors that name the database file."""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from agents_run.adapters.sql_rows import LIVE_STATUSES
from agents_run.errors import InfraUnavailable

T = TypeVar("T")
P = ParamSpec("P")

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    agent TEXT NOT NULL,
    input TEXT NOT NULL,
    status TEXT NOT NULL,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    last_seq INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 0,
    lease_until TEXT
);
CREATE TABLE IF NOT EXISTS events (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    type TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS steps (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    result TEXT NOT NULL,
    PRIMARY KEY (run_id, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS deployment (
    one_row INTEGER PRIMARY KEY CHECK (one_row = 1),
    key_prefix TEXT NOT NULL,
    token TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    published_at TEXT,
    claimed_by TEXT,
    claim_expires REAL
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (id) WHERE published_at IS NULL;
CREATE INDEX IF NOT EXISTS outbox_pending_by_run ON outbox (run_id, id)
    WHERE published_at IS NULL;
CREATE INDEX IF NOT EXISTS runs_live_by_update ON runs (julianday(updated_at), id)
    WHERE status IN {LIVE_STATUSES};
"""
# Columns a later version added, for files created before: (name, definition).
_ADDED_RUN_COLUMNS = [("attempt", "INTEGER NOT NULL DEFAULT 0"), ("lease_until", "TEXT")]
_LEASE_INDEX = (
    "CREATE INDEX IF NOT EXISTS runs_running_by_lease ON runs (julianday(lease_until), id)"
    " WHERE status = 'running'"
)


class SqliteConnections:
    """The connection half of ``SqliteRunStore``: set up by its constructor."""

    path: Path
    _busy_timeout: float
    _connection: sqlite3.Connection | None
    _thread: ThreadPoolExecutor
    _closed: bool

    async def _call(self, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        if self._closed:
            raise InfraUnavailable(f"{self!r} was closed (aclose): build a new store to go on")
        return await asyncio.get_running_loop().run_in_executor(
            self._thread, functools.partial(function, *args, **kwargs)
        )

    def _opened(self) -> sqlite3.Connection:
        if self._connection is None:
            try:
                connection = sqlite3.connect(
                    self.path, timeout=self._busy_timeout, isolation_level=None
                )
                connection.execute("PRAGMA journal_mode=WAL")
                connection.execute("PRAGMA foreign_keys=ON")
                connection.executescript(_SCHEMA)
                _add_missing_columns(connection)
            except sqlite3.Error as error:
                raise self._unavailable(error) from None
            self._connection = connection
        return self._connection

    def _unavailable(self, error: sqlite3.Error) -> InfraUnavailable:
        return InfraUnavailable(
            f"SQLite database {str(self.path)!r} is unusable ({error}): check that its folder "
            "exists and is writable; 'database is locked' means another process held it longer "
            f"than {self._busy_timeout:g} s (raise AGENTS_RUN_CONNECT_TIMEOUT)"
        )

    def _transaction(self, body: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``body`` in a write transaction, committed where it returns."""
        connection = self._opened()
        try:
            connection.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as error:
            raise self._unavailable(error) from None
        try:
            result = body(connection)
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        try:
            connection.execute("COMMIT")
        except sqlite3.OperationalError as error:
            connection.execute("ROLLBACK")
            raise self._unavailable(error) from None
        return result

    def _read(self, query: str, parameters: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            return self._opened().execute(query, parameters).fetchall()
        except sqlite3.OperationalError as error:
            raise self._unavailable(error) from None

    def _close_connection(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def _add_missing_columns(connection: sqlite3.Connection) -> None:
    present = {row[1] for row in connection.execute("PRAGMA table_info(runs)")}
    for name, definition in _ADDED_RUN_COLUMNS:
        if name not in present:
            connection.execute(f"ALTER TABLE runs ADD COLUMN {name} {definition}")
    connection.execute(_LEASE_INDEX)
