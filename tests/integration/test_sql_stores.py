"""What the SQL stores do beyond the port contract: their errors, their schema, `db init`."""

from __future__ import annotations

import asyncio
import socket
import sqlite3
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from agents_run import InfraConfigError, InfraUnavailable, InvalidArgument, RunStatus
from agents_run.adapters.postgres_store import PostgresRunStore
from agents_run.adapters.sqlite_store import SqliteRunStore
from agents_run.domain.events import Run
from agents_run.entrypoints.cli import main
from agents_run.ports import RunStorePort
from tests.services import postgres_url

pytestmark = pytest.mark.deterministic

AT = datetime(2026, 1, 1, tzinfo=UTC)
PASSWORD = "s3cret-pw"
# A guard, not a measurement: the store must give up well before this.
DEADLINE = 10.0


@pytest.fixture
def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A local port that accepts connections and never answers."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield server.getsockname()[1]


@pytest.fixture
def fresh_schema() -> Iterator[str]:
    """A schema name nobody uses, dropped afterwards if a test created it."""
    url = postgres_url()
    schema = f"test_{uuid.uuid4().hex}"
    yield schema
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(
            sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
        )


def a_run() -> Run:
    return Run(f"run-{uuid.uuid4().hex}", "echo", {}, RunStatus.QUEUED, AT, AT)


async def test_an_unreachable_postgres_raises_infra_unavailable_without_the_password(
    closed_port: int,
) -> None:
    store = PostgresRunStore(
        f"postgresql://postgres:{PASSWORD}@127.0.0.1:{closed_port}/test", connect_timeout=1.0
    )
    try:
        async with asyncio.timeout(DEADLINE):
            for attempt in (
                store.get_run("run-1"),
                store.create_schema(),
                store.wait_for_outbox(1.0),
            ):
                with pytest.raises(InfraUnavailable) as raised:
                    await attempt
                message = str(raised.value)
                assert PASSWORD not in message
                assert f"postgres:***@127.0.0.1:{closed_port}" in message
                assert "AGENTS_RUN_STORE_URL" in message
    finally:
        await store.aclose()


async def test_a_postgres_that_never_answers_raises_within_the_connect_timeout(
    silent_server: int,
) -> None:
    store = PostgresRunStore(
        f"postgresql://postgres:{PASSWORD}@127.0.0.1:{silent_server}/test", connect_timeout=0.5
    )
    try:
        async with asyncio.timeout(DEADLINE):
            with pytest.raises(InfraUnavailable, match=r"connect timeout 0\.5 s") as raised:
                await store.append_event("run-1", "RunStarted", {}, at=AT)
        assert PASSWORD not in str(raised.value)
    finally:
        await store.aclose()


def test_a_postgres_store_takes_only_urls_so_that_passwords_can_be_hidden() -> None:
    with pytest.raises(InvalidArgument, match="is not a postgresql:// URL") as raised:
        PostgresRunStore(f"host=db user=app password={PASSWORD}")
    assert PASSWORD not in str(raised.value)


async def test_a_postgres_schema_never_initialised_says_to_run_db_init(fresh_schema: str) -> None:
    store = PostgresRunStore(postgres_url(), schema=fresh_schema)
    try:
        with pytest.raises(InfraConfigError, match="run `agents-run db init`"):
            await store.create_run(a_run())
    finally:
        await store.aclose()


async def test_a_store_cancelled_while_opening_its_pool_leaves_no_pool_task_behind(
    fresh_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    opening = asyncio.Event()
    real_open = AsyncConnectionPool.open

    async def open_then_stall(self: AsyncConnectionPool[Any], *args: Any, **kwargs: Any) -> None:
        await real_open(self, wait=False)  # its worker tasks now run
        opening.set()
        await asyncio.Event().wait()  # the caller is cancelled here, as at a loop's shutdown

    monkeypatch.setattr(AsyncConnectionPool, "open", open_then_stall)
    store = PostgresRunStore(postgres_url(), schema=fresh_schema)
    first_use = asyncio.create_task(store.get_run("run-1"))
    await asyncio.wait_for(opening.wait(), 10)
    first_use.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first_use
    # Told to stop, the pool's workers end: left running, they would keep asyncio.run from ever
    # closing the loop.
    pool_tasks = [t for t in asyncio.all_tasks() if t.get_name().startswith("agents-run-")]
    if pool_tasks:
        _, running = await asyncio.wait(pool_tasks, timeout=10)
        assert running == set()
    await store.aclose()


async def test_after_its_connections_die_a_postgres_store_fails_once_then_recovers(
    fresh_schema: str,
) -> None:
    store = PostgresRunStore(postgres_url(), schema=fresh_schema, max_connections=4)
    try:
        await store.create_schema()
        await asyncio.gather(*(store.create_run(a_run()) for _ in range(8)))  # fill the pool
        async with await psycopg.AsyncConnection.connect(postgres_url(), autocommit=True) as admin:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = %s",
                (store.application_name,),
            )
        with pytest.raises(InfraUnavailable, match="is unavailable"):
            await store.create_run(a_run())
        run = a_run()
        await store.create_run(run)
        assert (await store.get_run(run.id)).id == run.id
    finally:
        await store.aclose()


async def test_a_sqlite_file_locked_too_long_by_another_process_raises(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    store = SqliteRunStore(path, busy_timeout=0.2)
    try:
        await store.create_schema()
        other_process = sqlite3.connect(path, isolation_level=None)
        other_process.execute("BEGIN IMMEDIATE")
        try:
            async with asyncio.timeout(DEADLINE):
                with pytest.raises(InfraUnavailable, match="database is locked"):
                    await store.create_run(a_run())
        finally:
            other_process.execute("ROLLBACK")
            other_process.close()
        await store.create_run(a_run())
    finally:
        await store.aclose()


@pytest.mark.parametrize("kind", ["postgres", "sqlite"])
async def test_a_closed_store_refuses_further_work(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    store: RunStorePort
    if kind == "postgres":
        store = PostgresRunStore(postgres_url(), schema=request.getfixturevalue("fresh_schema"))
    else:
        store = SqliteRunStore(tmp_path / "runs.db")
    await store.create_schema()
    await store.aclose()
    with pytest.raises(InfraUnavailable, match=r"was closed \(aclose\)"):
        await store.create_run(a_run())


async def test_sqlite_in_a_missing_folder_raises_infra_unavailable(tmp_path: Path) -> None:
    store = SqliteRunStore(tmp_path / "no-such-folder" / "runs.db")
    try:
        with pytest.raises(InfraUnavailable, match="check that its folder exists"):
            await store.get_run("run-1")
    finally:
        await store.aclose()


async def test_a_sqlite_claim_left_by_a_dead_publisher_expires(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    now = [1_000_000.0]
    dead = SqliteRunStore(path, claim_lease=60.0, clock=lambda: now[0])
    live = SqliteRunStore(path, clock=lambda: now[0])
    try:
        run = a_run()
        await live.create_run(run)
        await live.append_event(run.id, "RunStarted", {}, at=AT)
        # Entered and never left, as a publisher killed mid-publish leaves it.
        abandoned = dead.claim_outbox()
        claim = await abandoned.__aenter__()
        assert [r.event.seq for r in claim.rows] == [1]
        async with live.claim_outbox() as too_soon:
            assert too_soon.rows == []
        now[0] += 61.0  # past the lease
        async with live.claim_outbox() as after_the_lease:
            assert [r.event.seq for r in after_the_lease.rows] == [1]
    finally:
        await dead.aclose()
        await live.aclose()


@pytest.mark.usefixtures("infra")
def test_db_init_twice_on_postgres_creates_the_schema_once(
    fresh_schema: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AGENTS_RUN_STORE_URL", f"{postgres_url()}?schema={fresh_schema}")
    assert main(["db", "init"]) == 0
    assert main(["db", "init"]) == 0
    assert capsys.readouterr().out.count(f"store schema ready: {postgres_url()}") == 2

    async def use_it() -> list[str]:
        store = PostgresRunStore(postgres_url(), schema=fresh_schema)
        try:
            run = a_run()
            await store.create_run(run)
            await store.append_event(run.id, "RunStarted", {}, at=AT)
            return [e.type for e in await store.read_events(run.id)]
        finally:
            await store.aclose()

    assert asyncio.run(use_it()) == ["RunStarted"]


@pytest.mark.usefixtures("infra")
def test_db_init_twice_on_sqlite_creates_the_file_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "runs.db"
    monkeypatch.setenv("AGENTS_RUN_STORE_URL", f"sqlite://{path}")
    assert main(["db", "init"]) == 0
    assert main(["db", "init"]) == 0
    assert path.is_file()


@pytest.mark.usefixtures("infra")
def test_db_init_on_an_unreachable_postgres_fails_without_the_password(
    closed_port: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(
        "AGENTS_RUN_STORE_URL", f"postgresql://postgres:{PASSWORD}@127.0.0.1:{closed_port}/test"
    )
    monkeypatch.setenv("AGENTS_RUN_CONNECT_TIMEOUT", "1")
    assert main(["db", "init"]) == 2
    captured = capsys.readouterr()
    assert "agents-run db: InfraUnavailable" in captured.err
    assert PASSWORD not in captured.err + captured.out
