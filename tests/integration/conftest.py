from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from agents_run import Infra, register_agent, run_until_idle
from agents_run.application.agents import unregister_agent
from agents_run.server import HttpApiServer
from tests.integration.serving import LIMITS


@pytest.fixture
async def server(infra: Infra) -> AsyncIterator[HttpApiServer]:
    """The HTTP API on a free port of 127.0.0.1, serving the test's infra."""
    async with HttpApiServer("127.0.0.1", 0, LIMITS) as running:
        yield running
    await run_until_idle()  # leave no job or outbox row behind


@pytest.fixture
def register() -> Iterator[Callable[..., Callable[[Any], Any]]]:
    """``@register("name")`` registers a throwaway agent for this test only."""
    names: list[str] = []

    def decorator(name: str, *, resume: bool = True) -> Callable[[Any], Any]:
        names.append(name)
        return register_agent(name, resume=resume)

    yield decorator
    for name in names:
        unregister_agent(name)
