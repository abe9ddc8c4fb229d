from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from agents_run import Infra, run_until_idle
from agents_run.server import HttpApiServer
from tests.integration.serving import LIMITS


@pytest.fixture
async def server(infra: Infra) -> AsyncIterator[HttpApiServer]:
    """The HTTP API on a free port of 127.0.0.1, serving the test's infra."""
    async with HttpApiServer("127.0.0.1", 0, LIMITS) as running:
        yield running
    await run_until_idle()  # leave no job or outbox row behind
