"""The seam: the one provider of infrastructure, read by every use case at call time."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

# The sanctioned exception to "application never imports adapters": the default is in-memory.
from agents_run.adapters.memory import InMemoryEventBus, InMemoryQueue, InMemoryRunStore
from agents_run.arguments import require_seconds
from agents_run.ids_and_time import ManualClock, RandomIds, SequentialIds, SystemClock
from agents_run.ports import Clock, EventBusPort, IdGenerator, QueuePort, RunStorePort

# Another worker takes a run within about this long of its worker's crash (see leases.py).
DEFAULT_LEASE_SECONDS = 4.0
# How long published outbox rows are kept before the publisher's retention job deletes them.
DEFAULT_OUTBOX_RETENTION_SECONDS = 86_400.0


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
    # How long a worker holds a run it executes without renewing (AGENTS_RUN_LEASE_SECONDS).
    lease_seconds: float = DEFAULT_LEASE_SECONDS
    # How long published outbox rows stay (AGENTS_RUN_OUTBOX_RETENTION_SECONDS).
    outbox_retention_seconds: float = DEFAULT_OUTBOX_RETENTION_SECONDS

    def __post_init__(self) -> None:
        require_seconds(self.lease_seconds, "lease_seconds", positive=True)
        require_seconds(self.outbox_retention_seconds, "outbox_retention_seconds", positive=True)

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
# The default reset_infra() made in this context: get_infra() returning it falls back too.
_reset_default: ContextVar[Infra | None] = ContextVar("agents_run_reset_default", default=None)
# Called where get_infra() falls back to a default: a test harness's check (the pytest plugin's
# --agents-run-require-infra), which may raise. None (no check) costs one comparison.
_fallback_guard: Callable[[], None] | None = None


def get_infra() -> Infra:
    """The current infrastructure; the process's in-memory default where none was set."""
    global _process_default  # noqa: PLW0603 - the lazily built process-wide default
    try:
        infra = _current.get()
    except LookupError:
        if _process_default is None:
            _process_default = Infra.in_memory()
        infra = _process_default
    else:
        if _fallback_guard is None or infra is not _reset_default.get():
            return infra
    if _fallback_guard is not None:
        _fallback_guard()
    return infra


def set_fallback_guard(guard: Callable[[], None] | None) -> Callable[[], None] | None:
    """Have ``guard()`` called (None: nothing) whenever ``get_infra()`` falls back to a default
    infra that nobody set; returns the guard it replaces. For test harnesses."""
    global _fallback_guard  # one check per process, set by the harness
    previous, _fallback_guard = _fallback_guard, guard
    return previous


def set_infra(infra: Infra) -> None:
    if not isinstance(infra, Infra):
        raise TypeError(f"set_infra expects an Infra, got {type(infra).__name__}")
    _current.set(infra)


def reset_infra() -> None:
    """Back to a fresh in-memory default, in this context and in tasks created from it."""
    fresh = Infra.in_memory()
    _current.set(fresh)
    _reset_default.set(fresh)


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
