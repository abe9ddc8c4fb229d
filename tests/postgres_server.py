"""PostgreSQL faults for tests: the server ending the connections of one deployment only."""

from __future__ import annotations

import psycopg

from tests.services import postgres_url


async def terminate_connections(application_name: str) -> int:
    """What a failover looks like to the clients of one store: the server ends every connection
    whose ``application_name`` is that store's (``agents-run:<schema>``: never anyone else's).
    How many it ended."""
    async with await psycopg.AsyncConnection.connect(postgres_url(), autocommit=True) as admin:
        cursor = await admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = %s AND pid <> pg_backend_pid()",
            (application_name,),
        )
        row = await cursor.fetchone()
    return int(row[0]) if row else 0
