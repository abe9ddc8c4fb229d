"""register_agent refuses, at registration, whatever could never run as an agent."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from agents_run import RunContext, register_agent
from agents_run.application.agents import get_agent, unregister_agent
from agents_run.domain.json_data import JsonObject

NAME = "registration-under-test"


@pytest.fixture(autouse=True)
def _forget_the_agent() -> Iterator[None]:
    yield
    unregister_agent(NAME)


async def takes_input(input: JsonObject) -> AsyncIterator[JsonObject]:
    yield input


async def takes_input_and_context(input: JsonObject, ctx: RunContext) -> AsyncIterator[JsonObject]:
    yield {"run_id": ctx.run_id}


def plain(input: JsonObject) -> list[JsonObject]:
    return [input]


async def coroutine(input: JsonObject) -> JsonObject:
    return input


async def no_parameters() -> AsyncIterator[JsonObject]:
    yield {}


async def three_parameters(input: JsonObject, ctx: RunContext, extra: int) -> AsyncIterator[Any]:
    yield {}


async def a_required_keyword(input: JsonObject, *, model: str) -> AsyncIterator[JsonObject]:
    yield {}


def test_an_agent_of_input_alone_is_registered_without_context() -> None:
    assert register_agent(NAME, takes_input) is takes_input
    assert get_agent(NAME).takes_context is False


def test_an_agent_of_input_and_context_is_registered_with_it() -> None:
    register_agent(NAME)(takes_input_and_context)
    agent = get_agent(NAME)
    assert (agent.takes_context, agent.resume) == (True, True)


def test_resume_false_is_kept_with_the_agent() -> None:
    register_agent(NAME, takes_input, resume=False)
    assert get_agent(NAME).resume is False


@pytest.mark.parametrize(
    ("fn", "says"),
    [
        (plain, "got a plain function"),
        (coroutine, r"got a coroutine function \(async def without yield\)"),
        (lambda input: [input], "got a plain function"),
        ("takes_input", "got str 'takes_input'"),
        (no_parameters, r"one or two positional parameters.*it takes \(no parameters\)"),
        (three_parameters, r"it takes \(input: 'JsonObject', ctx: 'RunContext', extra: 'int'\)"),
        (a_required_keyword, r"nothing else that is required.*model: 'str'"),
    ],
)
def test_what_can_never_run_is_refused_at_registration(fn: Any, says: str) -> None:
    with pytest.raises(TypeError, match=f"agent '{NAME}' must .*{says}"):
        register_agent(NAME, fn)
    with pytest.raises(LookupError):
        get_agent(NAME)


def test_the_decorator_form_refuses_too() -> None:
    with pytest.raises(TypeError, match="coroutine function"):
        register_agent(NAME)(coroutine)  # type: ignore[type-var]
