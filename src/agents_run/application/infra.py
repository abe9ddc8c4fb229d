"""The seam: the one provider of infrastructure, read by every use case at call time."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

# The sanctioned exception to "application never imports adapters": the default is in-memory.
from agents_run.adapters.memory import (
    InMemoryEventBus,
    InMemoryQueue,
    InMemoryRunStore,
    ManualClock,
    SequentialIds,
)
from agents_run.ports import Clock, EventBusPort, IdGenerator, QueuePort, RunStorePort


@dataclass(frozen=True)
class Infra:
    """Everything a use case needs from the outside world, including ids and time."""

    bus: EventBusPort
    queue: QueuePort
    store: RunStorePort
    ids: IdGenerator = field(default_factory=SequentialIds)
    clock: Clock = field(default_factory=ManualClock)

    @classmethod
    def in_memory(cls) -> Infra:
        """Fresh deterministic in-memory infrastructure."""
        return cls(bus=InMemoryEventBus(), queue=InMemoryQueue(), store=InMemoryRunStore())

    async def aclose(self) -> None:
        """Close the adapters' connections (a no-op for in-memory ones)."""
        await self.bus.aclose()
        await self.queue.aclose()
        await self.store.aclose()


# No default: the in-memory default is built on first use, never at import time.
_current: ContextVar[Infra] = ContextVar("agents_run_infra")


def get_infra() -> Infra:
    """The current infrastructure; a fresh in-memory default where none was set."""
    try:
        return _current.get()
    except LookupError:
        infra = Infra.in_memory()
        _current.set(infra)
        return infra


def set_infra(infra: Infra) -> None:
    if not isinstance(infra, Infra):
        raise TypeError(f"set_infra expects an Infra, got {type(infra).__name__}")
    _current.set(infra)


def reset_infra() -> None:
    """Back to a fresh in-memory default (built lazily by the next ``get_infra()``)."""
    _current.set(Infra.in_memory())


@contextmanager
def use_infra(infra: Infra) -> Iterator[Infra]:
    """Use ``infra`` inside the block, then restore whatever was current before."""
    if not isinstance(infra, Infra):
        raise TypeError(f"use_infra expects an Infra, got {type(infra).__name__}")
    token = _current.set(infra)
    try:
        yield infra
    finally:
        _current.reset(token)
