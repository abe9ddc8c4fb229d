from __future__ import annotations

from collections.abc import AsyncIterator

from agents_run import register_agent, restoring_agents
from agents_run.application.agents import get_agent, registered_agents, unregister_agent
from agents_run.domain.json_data import JsonObject


async def _steps(input: JsonObject) -> AsyncIterator[JsonObject]:
    yield {}


def test_restoring_agents_puts_the_registry_back_as_it_was() -> None:
    before = registered_agents()
    echo = get_agent("echo")
    with restoring_agents():
        register_agent("inside", _steps)
        register_agent("echo", _steps)  # replaced inside the block
        assert "inside" in registered_agents()
        with restoring_agents():
            unregister_agent("inside")
        assert "inside" in registered_agents()
        unregister_agent("echo")
    assert registered_agents() == before
    assert get_agent("echo") is echo
