"""The seam: the one provider of infrastructure, read by every use case at call time."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

# The sanctioned exception to "application never imports adapters": the default is in-memory.
from agents_run.adapters.memory import InMemoryEventBus, InMemoryQueue, InMemoryRunStore
from agents_run.ids_and_time import ManualClock, RandomIds, SequentialIds, SystemClock
from agents_run.ports import Clock, EventBusPort, IdGenerator, QueuePort, RunStorePort


@dataclass(frozen=True)
class Infra:
    """Everything a use case needs from the outside world, including ids and time.

    Built by hand, it gets production ids and time: ``RandomIds`` (unique across processes) and
    the ``SystemClock``. ``in_memory()`` and the plugin's ``infra`` fixture use ``SequentialIds``
    and ``ManualClock`` instead, so that a test does the same on every run.
    """

    bus: EventBusPort
    queue: QueuePort
    store: RunStorePort
    ids: IdGenerator = field(default_factory=RandomIds)
    clock: Clock = field(default_factory=SystemClock)

    @classmethod
    def in_memory(cls) -> Infra:
        """Fresh deterministic in-memory infrastructure: sequential ids, a manual clock."""
        return cls(
            bus=InMemoryEventBus(),
            queue=InMemoryQueue(),
            store=InMemoryRunStore(),
            ids=SequentialIds(),
            clock=ManualClock(),
        )

    async def aclose(self) -> None:
        """Close the adapters' connections (a no-op for in-memory ones): all three, even where
        one fails to close; the first failure is raised afterwards."""
        failures: list[Exception] = []
        for part in (self.bus, self.queue, self.store):
            try:
                await part.aclose()
            except Exception as error:
                failures.append(error)
        if failures:
            raise failures[0]


_current: ContextVar[Infra] = ContextVar("agents_run_infra")
# Where no context set one, every task of the process shares one default, built on first use
# (never at import). Setting it in the ContextVar instead would give a task created before the
# first get_infra() a private default of its own.
_process_default: Infra | None = None


def get_infra() -> Infra:
    """The current infrastructure; the process's in-memory default where none was set."""
    global _process_default  # noqa: PLW0603 - the lazily built process-wide default
    try:
        return _current.get()
    except LookupError:
        if _process_default is None:
            _process_default = Infra.in_memory()
        return _process_default


def set_infra(infra: Infra) -> None:
    if not isinstance(infra, Infra):
        raise TypeError(f"set_infra expects an Infra, got {type(infra).__name__}")
    _current.set(infra)


def reset_infra() -> None:
    """Back to a fresh in-memory default, in this context and in tasks created from it."""
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
