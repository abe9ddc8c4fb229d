"""Two deployments never share a Redis key prefix or a store: the second process pointed at
another's prefix, or at another's store, is refused at start with a message saying which
setting to change (on the real servers, each test in namespaces of its own)."""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import replace
from pathlib import Path

import pytest

from agents_run import Infra
from agents_run.config import (
    InfraConfig,
    build_infra,
    check_deployment,
    create_namespace,
    isolated,
    read_config,
    remove_namespace,
)
from agents_run.errors import InfraConfigError
from tests.services import (
    delete_redis_keys,
    postgres_url,
    process_env,
    redis_url,
    unique_prefix,
)

# On the real servers whatever the mode, once: the memory pass runs them.
pytestmark = pytest.mark.agents_run_memory_only(reason="uses the servers directly, in namespaces")

Deploy = Callable[[str, str], Awaitable[tuple[Infra, InfraConfig]]]


@pytest.fixture
async def deploy() -> AsyncIterator[Deploy]:
    """``await deploy(schema_tag, prefix_tag)``: an infra on the real servers, and its config,
    whose store schema and key prefix are named by the tags (the same tag, the same namespace),
    removed after."""
    services = read_config(
        {
            "AGENTS_RUN_BUS_URL": redis_url(),
            "AGENTS_RUN_QUEUE_URL": redis_url(),
            "AGENTS_RUN_STORE_URL": postgres_url(),
        }
    )
    run = uuid.uuid4().hex[:10]
    made: list[InfraConfig] = []
    async with AsyncExitStack() as stack:

        async def make(schema_tag: str, prefix_tag: str) -> tuple[Infra, InfraConfig]:
            schema = isolated(services, f"t_dep_{run}_{schema_tag}")
            config = replace(schema, key_prefix=f"t_dep_{run}_{prefix_tag}")
            await create_namespace(config)
            made.append(config)
            infra = build_infra(config)
            stack.push_async_callback(infra.aclose)
            return infra, config

        yield make
    for config in made:
        await remove_namespace(config)
        await delete_redis_keys(redis_url(), config.key_prefix)


async def test_processes_of_one_deployment_pass_the_check_again_and_again(deploy: Deploy) -> None:
    (first, _), (again, _) = await deploy("a", "a"), await deploy("a", "a")
    await check_deployment(first)
    await check_deployment(again)
    await check_deployment(first)


async def test_a_second_deployment_on_the_same_key_prefix_with_another_store_is_refused(
    deploy: Deploy,
) -> None:
    await check_deployment((await deploy("a", "shared"))[0])
    with pytest.raises(InfraConfigError) as refused:
        await check_deployment((await deploy("b", "shared"))[0])
    message = str(refused.value)
    assert "_shared' belongs to the deployment whose store is PostgresRunStore(" in message
    assert "_a'" in message  # names the store that holds the prefix
    assert "AGENTS_RUN_KEY_PREFIX" in message
    assert "AGENTS_RUN_STORE_URL" in message


async def test_a_second_deployment_on_the_same_store_with_another_prefix_is_refused(
    deploy: Deploy,
) -> None:
    await check_deployment((await deploy("shared", "a"))[0])
    with pytest.raises(InfraConfigError) as refused:
        await check_deployment((await deploy("shared", "b"))[0])
    message = str(refused.value)
    assert "belongs to the deployment whose Redis key prefix is 't_dep_" in message
    assert "Set AGENTS_RUN_KEY_PREFIX=t_dep_" in message
    assert "?schema=" in message


async def test_a_prefix_whose_marker_redis_lost_is_claimed_again_by_its_store(
    deploy: Deploy,
) -> None:
    infra, config = await deploy("a", "a")
    await check_deployment(infra)
    await delete_redis_keys(redis_url(), config.key_prefix)
    await check_deployment(infra)  # a Redis restart without persistence: no refusal


async def test_the_publisher_command_refuses_to_start_in_another_deployments_prefix(
    deploy: Deploy,
) -> None:
    await check_deployment((await deploy("a", "shared"))[0])
    _, intruder = await deploy("b", "shared")
    publisher = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "agents_run.entrypoints.cli",
        "publisher",
        env=process_env(intruder),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(60):  # it refuses at start; one that started would not end
            _, stderr = await publisher.communicate()
    finally:
        if publisher.returncode is None:
            publisher.kill()
            await publisher.wait()
    assert publisher.returncode == 2
    assert "belongs to the deployment whose store is" in stderr.decode()


async def test_memory_parts_share_nothing_and_are_not_checked(infra: Infra) -> None:
    await check_deployment(infra)


async def test_an_sqlite_store_names_its_key_prefix_too(tmp_path: Path) -> None:
    store_url = f"sqlite://{tmp_path}/runs.db"
    first, second = (unique_prefix("dep"), unique_prefix("dep"))
    infras = [
        build_infra(
            read_config(
                {
                    "AGENTS_RUN_QUEUE_URL": redis_url(),
                    "AGENTS_RUN_STORE_URL": store_url,
                    "AGENTS_RUN_KEY_PREFIX": prefix,
                }
            )
        )
        for prefix in (first, second)
    ]
    try:
        await check_deployment(infras[0])
        with pytest.raises(InfraConfigError, match=f"whose Redis key prefix is '{first}'"):
            await check_deployment(infras[1])
    finally:
        for infra in infras:
            await infra.aclose()
        for prefix in (first, second):
            await delete_redis_keys(redis_url(), prefix)
