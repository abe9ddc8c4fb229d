from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from agents_run import Infra, run_until_idle
from agents_run.http import create_app
from agents_run.http.serving import RunningServer, running_server
from tests.integration.serving import LIMITS


@pytest.fixture
async def server(infra: Infra) -> AsyncIterator[RunningServer]:
    """The HTTP API on uvicorn on a free port of 127.0.0.1, serving the test's infra."""
    app = create_app(infra, limits=LIMITS, allow_guessable_ids=True)
    async with running_server(app, "127.0.0.1", 0, LIMITS) as running:
        yield running
    await run_until_idle()  # leave no job or outbox row behind
