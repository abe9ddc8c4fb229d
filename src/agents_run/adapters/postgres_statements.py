"""Every SQL statement of the PostgreSQL run store, with the schema name quoted once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import sql
from psycopg.types.json import Jsonb

from agents_run.adapters.sql_rows import LIVE_STATUSES, RUN_COLUMNS, STEP_COLUMNS
from agents_run.domain.events import NextRunEvent, RunStatus

# Runs whose state one store handle remembers for one-round-trip appends (a worker's few).
KNOWN_RUNS_LIMIT = 10_000


@dataclass(frozen=True)
class KnownRun:
    """A run's state as a store handle last wrote or read it: what an append's rule depends on,
    and what ``append_event`` checks is still stored."""

    status: RunStatus
    last_seq: int
    attempt: int
    cancel_requested: bool = False


def _as_is(text: str) -> str:
    return text


def as_jsonb(text: str) -> Jsonb:
    """A parameter for a ``jsonb`` column, from JSON text serialised (and measured) already."""
    return Jsonb(text, dumps=_as_is)


def append_parameters(
    known: KnownRun, appended: NextRunEvent, at: datetime, channel: str
) -> dict[str, Any]:
    """The parameters of ``Statements.append_event``."""
    event = appended.event
    return {
        "run_id": event.run_id,
        "seq": event.seq,
        "type": event.type,
        "data": as_jsonb(appended.data_json),
        "status": appended.status.value,
        "at": at,
        "channel": channel,
        "was_status": known.status.value,
        "was_seq": known.last_seq,
        "was_attempt": known.attempt,
        "was_cancel_requested": known.cancel_requested,
    }


class Statements:
    """The statements of a store whose tables live in ``schema``."""

    def __init__(self, schema: str) -> None:
        def q(text: str) -> sql.Composed:
            return sql.SQL(text).format(s=sql.Identifier(schema))

        # Literals, not a parameter: the planner uses the partial index only for a predicate
        # it can see at planning time. (Status values are fixed identifiers: nothing to quote.)
        live_statuses = "(" + ", ".join(f"'{status}'" for status in LIVE_STATUSES) + ")"

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
            # Which Redis key prefix this store's deployment uses (config/deployment.py).
            q(
                "CREATE TABLE IF NOT EXISTS {s}.deployment ("
                " one_row boolean PRIMARY KEY DEFAULT true CHECK (one_row),"
                " key_prefix text NOT NULL,"
                " token text NOT NULL,"
                " claimed_at timestamptz NOT NULL DEFAULT now())"
            ),
            # Added by a later version: `db init` on an older schema adds them.
            q("ALTER TABLE {s}.runs ADD COLUMN IF NOT EXISTS attempt integer NOT NULL DEFAULT 0"),
            q("ALTER TABLE {s}.runs ADD COLUMN IF NOT EXISTS lease_until timestamptz"),
            q(
                "CREATE INDEX IF NOT EXISTS runs_running_by_lease ON {s}.runs"
                " (lease_until, id COLLATE \"C\") WHERE status = 'running'"
            ),
        ]
        self.claim_deployment = q(
            "INSERT INTO {s}.deployment (key_prefix, token) VALUES (%s, %s) ON CONFLICT DO NOTHING"
        )
        self.read_deployment = q("SELECT key_prefix, token FROM {s}.deployment")
        self.create_run = q(
            f"INSERT INTO {{s}}.runs ({RUN_COLUMNS})"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        )
        self.get_run = q(f"SELECT {RUN_COLUMNS} FROM {{s}}.runs WHERE id = %s")
        # id in byte order (COLLATE "C"), as the other stores order ties.
        self.list_stale_runs = q(
            f"SELECT {RUN_COLUMNS} FROM {{s}}.runs WHERE status IN {live_statuses}"
            ' AND updated_at < %s ORDER BY updated_at, id COLLATE "C" LIMIT %s'
        )
        self.run_exists = q("SELECT 1 FROM {s}.runs WHERE id = %s")
        self.lock_run = q(
            "SELECT status, last_seq, attempt, cancel_requested FROM {s}.runs WHERE id = %s"
            " FOR UPDATE"
        )
        # The row lock of the UPDATE makes taking a lease atomic across processes.
        self.acquire_lease = q(
            "UPDATE {s}.runs SET attempt = attempt + 1, lease_until = %(until)s"
            f" WHERE id = %(run_id)s AND status IN {live_statuses}"
            f" AND (lease_until IS NULL OR lease_until <= %(at)s) RETURNING {RUN_COLUMNS}"
        )
        self.renew_lease = q(
            "UPDATE {s}.runs SET lease_until = %s"
            f" WHERE id = %s AND attempt = %s AND status IN {live_statuses} RETURNING id"
        )
        self.list_lapsed_leases = q(
            f"SELECT {RUN_COLUMNS} FROM {{s}}.runs WHERE status = 'running'"
            ' AND lease_until <= %s ORDER BY lease_until, id COLLATE "C" LIMIT %s'
        )
        # One round trip: the run changes only where it is still in the state the append's rule
        # was checked against, its cancel flag included (the UPDATE takes its row lock and
        # re-checks that after any wait: a cancel committed first sends it to the locked path);
        # the event, its outbox row and the NOTIFY follow only where it did. No row: nothing
        # written. Data-modifying CTEs always run, and NOTIFY is delivered on commit.
        self.append_event = q(
            "WITH moved AS ("
            "  UPDATE {s}.runs SET status = %(status)s, last_seq = %(seq)s, updated_at = %(at)s"
            "  WHERE id = %(run_id)s AND status = %(was_status)s AND last_seq = %(was_seq)s"
            "  AND attempt = %(was_attempt)s AND cancel_requested = %(was_cancel_requested)s"
            "  RETURNING id),"
            " appended AS ("
            "  INSERT INTO {s}.events (run_id, seq, type, data)"
            "  SELECT id, %(seq)s, %(type)s, %(data)s FROM moved RETURNING run_id, seq),"
            " queued AS ("
            "  INSERT INTO {s}.outbox (run_id, seq) SELECT run_id, seq FROM appended)"
            " SELECT pg_notify(%(channel)s, '') FROM appended"
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
        # The run's row read (and share-locked against a concurrent take-over) and the entry
        # written in one statement: the insert happens where the run is running and no later
        # attempt holds it; otherwise the row says why not (check_step_can_be_recorded).
        self.record_step = q(
            f"WITH run AS (SELECT {RUN_COLUMNS} FROM {{s}}.runs WHERE id = %s FOR SHARE),"
            f" recorded AS (INSERT INTO {{s}}.steps ({STEP_COLUMNS})"
            " SELECT %s, %s, %s, %s, %s, %s FROM run"
            " WHERE run.status = 'running' AND run.attempt <= %s"
            " ON CONFLICT (run_id, idx) DO NOTHING RETURNING idx)"
            f" SELECT {RUN_COLUMNS}, EXISTS (SELECT 1 FROM recorded) FROM run"
        )
        self.read_steps = q(
            f"SELECT {STEP_COLUMNS} FROM {{s}}.steps WHERE run_id = %s ORDER BY idx"
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
        self.delete_published = q(
            "DELETE FROM {s}.outbox WHERE id IN (SELECT id FROM {s}.outbox"
            " WHERE published_at <= now() - make_interval(secs => %s) ORDER BY id LIMIT %s)"
        )
        self.mark_published = q("UPDATE {s}.outbox SET published_at = now() WHERE id = ANY(%s)")
