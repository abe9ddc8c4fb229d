from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from agents_run.config import (
    InfraConfig,
    create_namespace,
    isolated,
    read_config,
    remove_namespace,
)
from tests.services import postgres_url, redis_url


@pytest.fixture
async def services_config() -> AsyncIterator[InfraConfig]:
    """Redis bus, BullMQ queue and PostgreSQL store in a fresh namespace, removed afterwards."""
    services = read_config(
        {
            "AGENTS_RUN_BUS_URL": redis_url(),
            "AGENTS_RUN_QUEUE_URL": redis_url(),
            "AGENTS_RUN_STORE_URL": postgres_url(),
        }
    )
    config = isolated(services, f"t_e2e_{uuid.uuid4().hex[:12]}")
    await create_namespace(config)
    try:
        yield config
    finally:
        await remove_namespace(config)
