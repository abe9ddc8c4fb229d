"""The agent registry. An agent is an async generator function: input in, step data out."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from typing import overload

from agents_run.domain.json_data import JsonObject
from agents_run.errors import InvalidArgument, UnknownAgent

AgentFn = Callable[[JsonObject], AsyncIterator[JsonObject]]

# Code registration, like pytest's plugin registry: agents are code, not infrastructure.
_registry: dict[str, AgentFn] = {}


@overload
def register_agent(name: str, fn: AgentFn) -> AgentFn: ...
@overload
def register_agent(name: str, fn: None = None) -> Callable[[AgentFn], AgentFn]: ...
def register_agent(name: str, fn: AgentFn | None = None) -> AgentFn | Callable[[AgentFn], AgentFn]:
    """Register ``fn`` as agent ``name``; without ``fn``, a decorator that does so."""
    check_agent_name(name)

    def register(agent: AgentFn) -> AgentFn:
        if not callable(agent):
            raise TypeError(f"agent {name!r} must be an async generator function")
        _registry[name] = agent
        return agent

    return register if fn is None else register(fn)


def check_agent_name(name: object) -> None:
    if not isinstance(name, str) or not name.strip():
        raise InvalidArgument(f"agent name must be a non-empty string, got {name!r}")


def get_agent(name: str) -> AgentFn:
    try:
        return _registry[name]
    except KeyError:
        raise UnknownAgent(name, registered_agents()) from None


def registered_agents() -> list[str]:
    return sorted(_registry)


def unregister_agent(name: str) -> None:
    """Remove an agent."""
    _registry.pop(name, None)


@contextmanager
def restoring_agents() -> Iterator[None]:
    """Inside the block, register and unregister agents freely: when it ends, the registry is
    as it was before (the plugin wraps every test in this)."""
    saved = dict(_registry)
    try:
        yield
    finally:
        _registry.clear()
        _registry.update(saved)


@register_agent("echo")
async def echo(input: JsonObject) -> AsyncIterator[JsonObject]:
    """One step per word of ``input["text"]``."""
    text = input.get("text", "")
    if not isinstance(text, str):
        raise TypeError(f'echo needs input["text"] to be a string, got {type(text).__name__}')
    for word in text.split():
        yield {"text": word}
