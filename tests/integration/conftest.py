from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from agents_run import Infra, register_agent, run_until_idle
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


@pytest.fixture
def register() -> Callable[..., Callable[[Any], Any]]:
    """``@register("name")`` registers a throwaway agent (the plugin forgets it after the test)."""

    def decorator(name: str, *, resume: bool = True) -> Callable[[Any], Any]:
        return register_agent(name, resume=resume)

    return decorator


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "deterministic_in_memory: deterministic on the in-memory infra only; in services mode "
        "two tasks (worker and publisher) interleave by I/O timing",
    )


def _in_memory(config: pytest.Config) -> bool:
    services = config.getoption("agents_run_services")
    return not (config.getini("agents_run_services") if services is None else services)


# Both before the plugin's: it repeats at generate_tests and compares the items' markers.
@pytest.hookimpl(tryfirst=True)
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.definition.get_closest_marker("deterministic_in_memory") and _in_memory(
        metafunc.config
    ):
        metafunc.definition.add_marker(pytest.mark.deterministic)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _in_memory(config):
        for item in items:
            if item.get_closest_marker("deterministic_in_memory"):
                item.add_marker(pytest.mark.deterministic)
