"""Throwaway namespaces on the real servers: made, used, and removed without a trace."""

from __future__ import annotations

import uuid
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest
import redis

from agents_run import run_until_idle, start_run, use_infra
from agents_run.config import (
    build_infra,
    create_namespace,
    isolated,
    read_config,
    remove_namespace,
)
from tests.services import postgres_url, redis_url

pytestmark = pytest.mark.deterministic


async def test_a_namespace_on_redis_and_postgres_is_removed_whole() -> None:
    services = read_config(
        {
            "AGENTS_RUN_BUS_URL": redis_url(),
            "AGENTS_RUN_QUEUE_URL": redis_url(),
            "AGENTS_RUN_STORE_URL": postgres_url(),
        }
    )
    namespace = f"t_ns_{uuid.uuid4().hex[:12]}"
    config = isolated(services, namespace)
    await create_namespace(config)
    infra = build_infra(config)
    try:
        with use_infra(infra):
            run_id = await start_run("echo", {"text": "a b"})
            await run_until_idle()
            assert (await infra.store.get_run(run_id)).status == "finished"
    finally:
        await infra.aclose()
        await remove_namespace(config)

    with psycopg.connect(postgres_url()) as connection:
        found = connection.execute(
            "SELECT count(*) FROM information_schema.schemata WHERE schema_name = %s",
            (namespace,),
        ).fetchone()
    assert found == (0,)
    client = redis.Redis.from_url(redis_url())
    try:
        assert list(client.scan_iter(match=f"{namespace}:*")) == []
    finally:
        client.close()


async def test_an_sqlite_namespace_is_a_file_that_goes_away(tmp_path: Path) -> None:
    config = isolated(read_config({"AGENTS_RUN_STORE_URL": f"sqlite://{tmp_path}/runs.db"}), "t_a")
    await create_namespace(config)
    infra = build_infra(config)
    with use_infra(infra):
        await start_run("echo", {"text": "a"})
        await run_until_idle()
    await infra.aclose()
    assert (tmp_path / "runs-t_a.db").exists()
    await remove_namespace(config)
    assert list(tmp_path.iterdir()) == []


async def test_removing_prefix_a_leaves_the_keys_of_prefix_a_colon_b() -> None:
    services = read_config({"AGENTS_RUN_BUS_URL": redis_url(), "AGENTS_RUN_QUEUE_URL": redis_url()})
    outer = f"t_ns_{uuid.uuid4().hex[:12]}"
    configs = {prefix: replace(services, key_prefix=prefix) for prefix in (outer, f"{outer}:b")}
    runs = {}
    for prefix, config in configs.items():
        infra = build_infra(config)
        try:
            with use_infra(infra):
                runs[prefix] = await start_run("echo", {"text": "a"})  # a job waits in Redis
        finally:
            await infra.aclose()
    client = redis.Redis.from_url(redis_url())
    try:
        inner_keys = sorted(client.scan_iter(match=f"{outer}:b:*"))
        assert inner_keys, "prefix a:b has queue keys of its own"
        await remove_namespace(configs[outer])
        assert sorted(client.scan_iter(match=f"{outer}:*")) == inner_keys
        await remove_namespace(configs[f"{outer}:b"])
        assert list(client.scan_iter(match=f"{outer}:*")) == []
    finally:
        client.close()
