"""Rows of the SQL stores (PostgreSQL, SQLite) to and from domain values: one mapping for both.

The two stores share their tables' columns; they differ only in how a driver hands over JSON and
timestamps (PostgreSQL: ``jsonb`` and ``timestamptz`` as Python values; SQLite: text), which each
store passes in as ``load_json`` and ``load_time``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from agents_run.domain.events import Run, RunEvent, RunStatus
from agents_run.domain.journal import StepKind, StepRecord
from agents_run.domain.json_data import JsonObject
from agents_run.ports import OutboxRow

Row = Sequence[Any]
LoadJson = Callable[[Any], JsonObject]
LoadTime = Callable[[Any], datetime]

RUN_COLUMNS = (
    "id, agent, input, status, cancel_requested, last_seq, created_at, updated_at, attempt,"
    " lease_until"
)
STEP_COLUMNS = "run_id, idx, attempt, kind, name, result"
# Statuses of runs not yet ended, as stored.
LIVE_STATUSES = tuple(status.value for status in RunStatus if not status.is_terminal)


def _same(value: Any) -> Any:
    return value


def run_values(
    run: Run, *, dump_json: Callable[[JsonObject], Any], dump_time: Callable[[datetime], Any]
) -> tuple[Any, ...]:
    """The parameters of an insert into ``runs`` (columns in ``RUN_COLUMNS`` order)."""
    return (
        run.id,
        run.agent,
        dump_json(run.input),
        run.status.value,
        run.cancel_requested,
        run.last_seq,
        dump_time(run.created_at),
        dump_time(run.updated_at),
        run.attempt,
        None if run.lease_until is None else dump_time(run.lease_until),
    )


def run_from_row(row: Row, *, load_json: LoadJson = _same, load_time: LoadTime = _same) -> Run:
    """A ``Run`` from a row selected with ``RUN_COLUMNS``."""
    (
        id_,
        agent,
        run_input,
        status,
        cancel_requested,
        last_seq,
        created_at,
        updated_at,
        attempt,
        lease_until,
    ) = row
    return Run(
        id=id_,
        agent=agent,
        input=load_json(run_input),
        status=RunStatus(status),
        created_at=load_time(created_at),
        updated_at=load_time(updated_at),
        last_seq=last_seq,
        cancel_requested=bool(cancel_requested),
        attempt=attempt,
        lease_until=None if lease_until is None else load_time(lease_until),
    )


def events_from_rows(
    run_id: str, rows: Iterable[Row], *, load_json: LoadJson = _same
) -> list[RunEvent]:
    """Events of ``run_id`` from rows of ``seq, type, data``: checked when they were appended,
    so not again on every read (a backfill of a long run reads them by the thousand)."""
    return [
        RunEvent.checked_already(run_id, seq, type_, load_json(data)) for seq, type_, data in rows
    ]


def outbox_rows_from_rows(rows: Iterable[Row], *, load_json: LoadJson = _same) -> list[OutboxRow]:
    """Outbox rows from rows of ``outbox id, run_id, seq, type, data``."""
    return [
        OutboxRow(id=id_, event=RunEvent.checked_already(run_id, seq, type_, load_json(data)))
        for id_, run_id, seq, type_, data in rows
    ]


def step_values(record: StepRecord, *, dump_json: Callable[[Any], Any]) -> tuple[Any, ...]:
    """The parameters of an insert into ``steps`` (columns in ``STEP_COLUMNS`` order)."""
    return (
        record.run_id,
        record.index,
        record.attempt,
        record.kind.value,
        record.name,
        dump_json(record.result),
    )


def steps_from_rows(
    rows: Iterable[Row], *, load_json: Callable[[Any], Any] = _same
) -> list[StepRecord]:
    """Journal entries from rows selected with ``STEP_COLUMNS``."""
    return [
        StepRecord(run_id, index, attempt, StepKind(kind), name, load_json(result))
        for run_id, index, attempt, kind, name, result in rows
    ]
