"""The agent registry. An agent is an async generator function: input (and context) in, step
data out."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, overload

from agents_run.domain.json_data import JsonObject
from agents_run.errors import InvalidArgument, UnknownAgent

if TYPE_CHECKING:
    from agents_run.application.run_context import RunContext

# ``async def agent(input)`` or ``async def agent(input, ctx)``.
AgentFn = (
    Callable[[JsonObject], AsyncIterator[JsonObject]]
    | Callable[[JsonObject, "RunContext"], AsyncIterator[JsonObject]]
)
F = TypeVar("F", bound=Callable[..., AsyncIterator[Any]])
_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


@dataclass(frozen=True)
class Agent:
    """A registered agent. ``resume``: a run whose worker vanished is resumed by replay (False:
    it ends ``WorkerLost``)."""

    name: str
    fn: Callable[..., AsyncIterator[JsonObject]]
    takes_context: bool
    resume: bool = True

    def start(self, input: JsonObject, ctx: RunContext) -> AsyncIterator[JsonObject]:
        return self.fn(input, ctx) if self.takes_context else self.fn(input)


# Code registration, like pytest's plugin registry: agents are code, not infrastructure.
_registry: dict[str, Agent] = {}


@overload
def register_agent(name: str, fn: F, *, resume: bool = True) -> F: ...
@overload
def register_agent(name: str, fn: None = None, *, resume: bool = True) -> Callable[[F], F]: ...
def register_agent(name: str, fn: F | None = None, *, resume: bool = True) -> F | Callable[[F], F]:
    """Register ``fn`` as agent ``name``; without ``fn``, a decorator that does so.

    ``fn`` must be an async generator function taking ``(input)`` or ``(input, ctx)``; anything
    else raises ``TypeError`` here rather than failing every run later.
    """
    check_agent_name(name)
    if not isinstance(resume, bool):
        raise InvalidArgument(f"resume must be True or False, got {resume!r}")

    def register(agent: F) -> F:
        _registry[name] = Agent(name, agent, _takes_context(name, agent), resume)
        return agent

    return register if fn is None else register(fn)


def _takes_context(name: str, fn: object) -> bool:
    """Whether ``fn`` is ``async def agent(input, ctx)``; raises where it is no agent at all."""
    expected = "an async generator function: async def agent(input) or agent(input, ctx) with yield"
    if not inspect.isasyncgenfunction(fn):
        kind = (
            "a coroutine function (async def without yield)"
            if inspect.iscoroutinefunction(fn)
            else f"a plain function {fn!r}"
            if callable(fn)
            else f"{type(fn).__name__} {fn!r}"
        )
        raise TypeError(f"agent {name!r} must be {expected}; got {kind}")
    parameters = list(inspect.signature(fn).parameters.values())
    positional = [p for p in parameters if p.kind in _POSITIONAL]
    required_others = [
        p
        for p in parameters
        if p.kind not in _POSITIONAL
        and p.kind is inspect.Parameter.KEYWORD_ONLY
        and p.default is inspect.Parameter.empty
    ]
    if len(positional) not in (1, 2) or required_others:
        shown = ", ".join(str(p) for p in parameters) or "no parameters"
        raise TypeError(
            f"agent {name!r} must take one or two positional parameters, (input) or (input, "
            f"ctx), and nothing else that is required; it takes ({shown})"
        )
    return len(positional) == 2


def check_agent_name(name: object) -> None:
    if not isinstance(name, str) or not name.strip():
        raise InvalidArgument(f"agent name must be a non-empty string, got {name!r}")


def get_agent(name: str) -> Agent:
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
