"""The plugin puts the process-wide agent registry back after every test."""

from __future__ import annotations

import pytest

REGISTRY_TESTS = """
import pytest
from agents_run import UnknownAgent, register_agent, run_until_idle, start_run
from agents_run.application.agents import registered_agents, unregister_agent

@register_agent("at-import")  # registered when the module is imported: stays for every test
async def at_import(input):
    yield {}

@pytest.fixture(scope="module")
def module_agent():
    @register_agent("module-wide")
    async def agent(input):
        yield {}

    return "module-wide"

@pytest.fixture
def function_agent():
    @register_agent("from-a-fixture")
    async def agent(input):
        yield {}

    return "from-a-fixture"

def test_1_registers_agents(module_agent, function_agent):
    @register_agent("in-the-test")
    async def agent(input):
        yield {}

    unregister_agent("echo")
    assert "echo" not in registered_agents()
    assert {"in-the-test", "from-a-fixture", "module-wide", "at-import"} <= set(registered_agents())

async def test_2_sees_none_of_them_and_gets_echo_back(infra, module_agent):
    assert {"at-import", "echo", "module-wide"} <= set(registered_agents())
    assert not {"in-the-test", "from-a-fixture"} & set(registered_agents())
    with pytest.raises(UnknownAgent):
        await start_run("in-the-test", {})
    await start_run("echo", {"text": "back"})
    await run_until_idle()
"""


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["in-process", "xdist"])
def test_agents_registered_in_a_test_do_not_leak_into_the_next(
    project: pytest.Pytester, xdist: list[str]
) -> None:
    project.makepyfile(test_registry=REGISTRY_TESTS)
    # In file order, and both on one worker (the registry is per process).
    options = ["-p", "no:randomly", *xdist] + (["--dist", "loadfile"] if xdist else [])
    result = project.runpytest_subprocess(*options) if xdist else project.runpytest(*options)
    result.assert_outcomes(passed=2)
