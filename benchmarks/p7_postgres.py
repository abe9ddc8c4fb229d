"""P7: ``PostgresRunStore.append_event`` on one run, one after another, against raw psycopg
appending the same event row, outbox row and run seq in one statement and one round trip; and
the backfill of a 100,000-event run (``read_events``) against the same ``SELECT``.

    .venv/bin/python -m benchmarks.p7_postgres [--quick]

Runs in a fresh schema on AGENTS_RUN_TEST_POSTGRES_URL, dropped afterwards.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from agents_run import RunStatus
from agents_run.adapters.postgres_store import PostgresRunStore
from agents_run.domain.events import Run
from benchmarks.measure import POSTGRES_URL, Figure, alternate_async, main, ratios

AT = datetime(2026, 1, 1, tzinfo=UTC)


@asynccontextmanager
async def fresh_schema() -> AsyncIterator[tuple[PostgresRunStore, str]]:
    schema = f"bench_{uuid.uuid4().hex[:16]}"
    store = PostgresRunStore(POSTGRES_URL, schema=schema)
    try:
        await store.create_schema()
        yield store, schema
    finally:
        await store.aclose()
        async with await psycopg.AsyncConnection.connect(POSTGRES_URL, autocommit=True) as conn:
            await conn.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
            )


async def started_run(store: PostgresRunStore) -> str:
    run = Run(f"run-{uuid.uuid4().hex}", "echo", {}, RunStatus.QUEUED, AT, AT)
    await store.create_run(run)
    await store.append_event(run.id, "RunStarted", {}, at=AT)
    return run.id


async def seed(schema: str, run_id: str, events: int) -> None:
    """Grow a started run to ``events`` events at once, published (as a long run's would be)."""
    async with await psycopg.AsyncConnection.connect(POSTGRES_URL, autocommit=True) as conn:
        s = sql.Identifier(schema)
        await conn.execute(
            sql.SQL(
                "INSERT INTO {}.events (run_id, seq, type, data) SELECT %s, g, 'RunStep',"
                " jsonb_build_object('text', 'word ' || g) FROM generate_series(2, %s) g"
            ).format(s),
            (run_id, events),
        )
        await conn.execute(
            sql.SQL("UPDATE {}.runs SET status = 'running', last_seq = %s WHERE id = %s").format(s),
            (events, run_id),
        )


async def appends_ours(store: PostgresRunStore, run_id: str, count: int) -> float:
    began = time.perf_counter()
    for i in range(count):
        await store.append_event(run_id, "RunStep", {"text": f"word {i}"}, at=AT)
    return count / (time.perf_counter() - began)


async def appends_raw(schema: str, run_id: str, count: int) -> float:
    statement = sql.SQL(
        "WITH moved AS (UPDATE {s}.runs SET last_seq = last_seq + 1, updated_at = %s"
        " WHERE id = %s RETURNING id, last_seq),"
        " appended AS (INSERT INTO {s}.events (run_id, seq, type, data)"
        " SELECT id, last_seq, 'RunStep', %s FROM moved RETURNING run_id, seq),"
        " queued AS (INSERT INTO {s}.outbox (run_id, seq) SELECT run_id, seq FROM appended)"
        " SELECT pg_notify(%s, '') FROM appended"
    ).format(s=sql.Identifier(schema))
    channel = f"{schema}_outbox"
    async with await psycopg.AsyncConnection.connect(POSTGRES_URL, autocommit=True) as conn:
        began = time.perf_counter()
        for i in range(count):
            cursor = await conn.execute(
                statement, (AT, run_id, Jsonb({"text": f"word {i}"}), channel)
            )
            await cursor.fetchone()
        return count / (time.perf_counter() - began)


async def backfill_ours(store: PostgresRunStore, run_id: str) -> float:
    began = time.perf_counter()
    events = await store.read_events(run_id)
    return len(events) / (time.perf_counter() - began)


async def backfill_raw(schema: str, run_id: str) -> float:
    statement = sql.SQL(
        "SELECT seq, type, data FROM {}.events WHERE run_id = %s AND seq >= %s"
        " ORDER BY seq LIMIT %s"
    ).format(sql.Identifier(schema))
    async with await psycopg.AsyncConnection.connect(POSTGRES_URL, autocommit=True) as conn:
        began = time.perf_counter()
        cursor = await conn.execute(statement, (run_id, 1, None))
        rows = await cursor.fetchall()
        return len(rows) / (time.perf_counter() - began)


async def _figures(quick: bool) -> list[Figure]:
    appends, events, pairs = (300, 10_000, 2) if quick else (2_000, 100_000, 5)
    async with fresh_schema() as (store, schema):
        ours_run, raw_run = await started_run(store), await started_run(store)
        ours, raw = await alternate_async(
            pairs,
            lambda: appends_ours(store, ours_run, appends),
            lambda: appends_raw(schema, raw_run, appends),
        )
        long_run = await started_run(store)
        await seed(schema, long_run, events)
        read_ours, read_raw = await alternate_async(
            pairs, lambda: backfill_ours(store, long_run), lambda: backfill_raw(schema, long_run)
        )
    return [
        Figure(
            "P7",
            f"PostgreSQL append (event + outbox + run seq), 1 run, {appends:,} in a row",
            "raw psycopg, one statement, one round trip",
            ratios(ours, raw),
            ">= 0.8x",
            limit=0.8,
            detail=f"{sorted(ours)[pairs // 2]:,.0f} vs {sorted(raw)[pairs // 2]:,.0f} appends/s",
        ),
        Figure(
            "P7",
            f"backfill of a {events:,}-event run (`read_events`)",
            "the same `SELECT`, raw psycopg",
            ratios(read_ours, read_raw),
            ">= 0.8x",
            limit=0.8,
            detail=f"{sorted(read_ours)[pairs // 2]:,.0f} vs "
            f"{sorted(read_raw)[pairs // 2]:,.0f} events/s",
        ),
    ]


def figures(quick: bool) -> list[Figure]:
    return asyncio.run(_figures(quick))


if __name__ == "__main__":
    main(figures)
