"""Recording proxies: a test's infra with every effect on its ports written to a trace.

One generic proxy per port wraps whatever adapter the infra factory made (in-memory or
networked), so the trace does not depend on any adapter's internals. Before every port call it
notes the event loop (``bind``, see loops.py); what it records is listed in one table,
``PORT_METHODS``: each method of each port is there, either as an ``Effect`` (recorded) or as
``READ`` (passed through unrecorded). A port method missing from the table is refused at call
time, and tests/plugin/test_recording.py fails for it.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Generic, Protocol, cast

from agents_run import Infra, RunEvent
from agents_run.domain.json_data import json_object_copy
from agents_run.ports import EventBusPort, QueuePort, RunStorePort, Subscription

# One JSON object per effect: {"op": ..., then the effect's fields}.
TraceEntry = dict[str, Any]
Bind = Callable[[], Awaitable[None]]
Arguments = Mapping[str, Any]
Fields = dict[str, Any]


async def _unbound() -> None:
    """The default ``Bind``: nothing to note."""


class Trace:
    """The effects one test had on its infra, in the order they completed."""

    def __init__(self) -> None:
        self.entries: list[TraceEntry] = []

    def record(self, op: str, **fields: object) -> None:
        self.entries.append({"op": op, **fields})

    def record_raised(self, op: str, error: Exception, **fields: object) -> None:
        """A port call that raised is an effect too (which error, not its volatile message)."""
        self.record(op, **fields, raised=type(error).__name__)


@dataclasses.dataclass(frozen=True)
class Effect:
    """A port method whose calls are recorded as ``op``.

    ``fields`` come from the call's arguments (by the port's parameter names), taken before the
    call; they are recorded when it raises, and when it returns unless ``outcome`` is given:
    then ``outcome(arguments, result)`` is recorded instead, or nothing where it gives None.
    """

    op: str
    fields: Callable[[Arguments], Fields]
    outcome: Callable[[Arguments, Any], Fields | None] | None = None
    # A batch call: one entry per item of the sequence ``fields`` gives, as its single calls
    # would record (``fields`` then returns ``{"each": [fields, ...]}``).
    batch: bool = False


class Read:
    """A port method that is no effect: the loop is noted, nothing is recorded."""

    def __repr__(self) -> str:
        return "READ"


READ = Read()


def _job(arguments: Arguments) -> Fields:
    return {"run_id": arguments["job"].run_id, "attempt": arguments["job"].attempt}


def _published(event: RunEvent) -> Fields:
    return {"run_id": event.run_id, "seq": event.seq, "type": event.type}


def _appended(_: Arguments, event: RunEvent) -> Fields:
    data = json_object_copy(event.data, "event data")
    return {"run_id": event.run_id, "seq": event.seq, "type": event.type, "data": data}


# Every method of every wrapped port: an effect (recorded) or a read. Reads are not effects:
# what a test read does not change what it did. Publishing is recorded by the bus, so a claim's
# rows being marked published is bookkeeping (claims are passed through).
PORT_METHODS: Mapping[type, Mapping[str, Effect | Read]] = {
    EventBusPort: {
        "publish": Effect("publish", lambda a: _published(a["event"])),
        "publish_batch": Effect(
            "publish",
            lambda a: {"each": [_published(event) for event in a["events"]]},
            batch=True,
        ),
        "subscribe": Effect("subscribe", lambda a: {"run_id": a["run_id"]}),
        "aclose": READ,
    },
    Subscription: {"next_event": READ, "aclose": READ, "__aiter__": READ},
    QueuePort: {
        "enqueue": Effect("enqueue", lambda a: {"run_id": a["run_id"]}),
        # A take that finds nothing is a poll, not an effect.
        "take_next": Effect(
            "take",
            lambda _: {},
            lambda _, job: None if job is None else {"run_id": job.run_id, "attempt": job.attempt},
        ),
        "complete": Effect("complete", _job),
        "fail": Effect("fail", lambda a: {**_job(a), "reason": a["error"]}),
        "counts": READ,
        "recover_stalled": READ,
        "has_live_job": READ,
        "may_have_lost_jobs": READ,
        "wait_for_job": READ,
        "aclose": READ,
    },
    RunStorePort: {
        "create_run": Effect(
            "create_run",
            lambda a: {
                "run_id": a["run"].id,
                "agent": a["run"].agent,
                "input": json_object_copy(a["run"].input, "run input"),
            },
        ),
        "append_event": Effect(
            "append_event", lambda a: {"run_id": a["run_id"], "type": a["type"]}, _appended
        ),
        "request_cancel": Effect(
            "request_cancel",
            lambda a: {"run_id": a["run_id"]},
            lambda a, requested: {"run_id": a["run_id"], "requested": requested},
        ),
        "record_step": Effect(
            "record_step",
            lambda a: {
                "run_id": a["record"].run_id,
                "index": a["record"].index,
                "attempt": a["record"].attempt,
                "kind": a["record"].kind.value,
                "name": a["record"].name,
                "result": copy.deepcopy(a["record"].result),
            },
        ),
        "get_run": READ,
        "read_events": READ,
        "read_steps": READ,
        "wait_for_cancel": READ,
        "list_stale_runs": READ,
        # Leases are not traced: renewals happen on the wall clock, as often as a run takes, and
        # what a lease decides (who may append) shows in the appends, which are.
        "acquire_lease": READ,
        "renew_lease": READ,
        "list_lapsed_leases": READ,
        "pending_outbox": READ,
        "count_pending_outbox": READ,
        # Bookkeeping of published rows, as marking them is.
        "delete_published_outbox": READ,
        "claim_outbox": READ,
        "wait_for_outbox": READ,
        "create_schema": READ,
        "aclose": READ,
    },
}

# The protocols of agents_run.ports that are not wrapped, and why.
NOT_WRAPPED: Mapping[str, str] = {
    "OutboxClaim": "yielded by claim_outbox as it is: marking rows published is bookkeeping",
    "IdGenerator": "not a port of effects: ids are the infra's own, shared by every repeat",
    "Clock": "not a port of effects: time is the infra's own, shared by every repeat",
}


@functools.cache
def port_methods(port: type) -> frozenset[str]:
    """The methods a port protocol declares or inherits (its public ones, and ``__aiter__``)."""
    return frozenset(
        name
        for declaring in port.__mro__
        if declaring not in (object, Protocol, Generic)
        for name, member in vars(declaring).items()
        if callable(member) and (not name.startswith("_") or name == "__aiter__")
    )


def table_gaps(table: Mapping[type, Mapping[str, Effect | Read]] = PORT_METHODS) -> list[str]:
    """What ``table`` misses: port methods it lists as neither effect nor read, and names it
    lists that are no method of their port. Empty where every port call is accounted for."""
    gaps = []
    for port, methods in table.items():
        declared = port_methods(port)
        gaps += [
            f"{port.__name__}.{name}: neither an effect nor a read"
            for name in sorted(declared - methods.keys())
        ]
        gaps += [
            f"{port.__name__}.{name}: listed, but not a method of the port"
            for name in sorted(methods.keys() - declared)
        ]
    return gaps


class UnlistedPortMethod(TypeError):
    """A port method is in neither the effects nor the reads of ``PORT_METHODS``."""


class RecordingPort:
    """Wraps one adapter of ``port``: every port method notes the loop, effects are recorded.

    Delegates everything else (adapter helpers such as ``InMemoryEventBus.published``) and passes
    ``isinstance`` checks for the wrapped class, as ``wrapt.ObjectProxy`` does.
    """

    def __init__(
        self,
        wrapped: Any,
        port: type,
        trace: Trace,
        bind: Bind,
        methods: Mapping[str, Effect | Read] | None = None,
    ) -> None:
        self.__wrapped__ = wrapped
        self._recording_port = port
        # The port's row of PORT_METHODS; another table only in the tests of this module.
        self._recording_methods = PORT_METHODS[port] if methods is None else methods
        self._recording_trace = trace
        # Awaited before every port call: notes the loop the ports run on (see loops.py).
        self._recording_bind = bind
        self._recording_calls: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_recording") or name == "__wrapped__":
            raise AttributeError(name)  # not set yet (copy, pickle): no endless recursion
        if name in port_methods(self._recording_port):
            call = self._port_call(name)
            # Found directly from now on; never a name the class defines (that would shadow it).
            self.__dict__[name] = call
            return call
        return getattr(self.__wrapped__, name)

    def _port_call(self, name: str) -> Any:
        """The wrapped adapter's ``name``, noting the loop first and recorded where an effect."""
        call = self._recording_calls.get(name)
        if call is None:
            kind = self._recording_methods.get(name)
            if kind is None:
                raise UnlistedPortMethod(
                    f"{self._recording_port.__name__}.{name} is in neither the effects nor the "
                    "reads of pytest_agents_run.recording.PORT_METHODS: add it there"
                )
            call = self._recording_calls[name] = self._wrap(name, kind)
        return call

    def _wrap(self, name: str, kind: Effect | Read) -> Any:
        target = getattr(self.__wrapped__, name)
        bind = self._recording_bind
        if not _is_coroutine_method(self._recording_port, name):
            if isinstance(kind, Effect):
                raise TypeError(f"{name} is not a coroutine: only reads can be plain methods")

            def plain(*args: Any, **kwargs: Any) -> Any:
                result = target(*args, **kwargs)
                if isinstance(result, AbstractAsyncContextManager):
                    return _entered_on_the_loop(result, bind)  # claim_outbox
                return result

            return plain
        if isinstance(kind, Read):

            async def read(*args: Any, **kwargs: Any) -> Any:
                await bind()
                return await target(*args, **kwargs)

            return read
        bind_arguments = _port_argument_binder(self._recording_port, name)
        trace = self._recording_trace

        async def effect(*args: Any, **kwargs: Any) -> Any:
            await bind()
            arguments = bind_arguments(args, kwargs)
            fields = kind.fields(arguments)
            each = fields["each"] if kind.batch else [fields]
            try:
                result = await target(*args, **kwargs)
            except Exception as error:
                for item in each:
                    trace.record_raised(kind.op, error, **item)
                raise
            if kind.batch:
                for item in each:
                    trace.record(kind.op, **item)
                return result
            if kind.outcome is not None:
                outcome = kind.outcome(arguments, result)
                if outcome is None:
                    return result
                fields = outcome
            trace.record(kind.op, **fields)
            return result

        return effect

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        return type(self.__wrapped__)

    def __repr__(self) -> str:
        return f"<recording {self.__wrapped__!r}>"


@functools.cache  # one look per port method, not one per test
def _is_coroutine_method(port: type, name: str) -> bool:
    return inspect.iscoroutinefunction(getattr(port, name))


ArgumentBinder = Callable[[tuple[Any, ...], dict[str, Any]], Arguments]


@functools.cache  # one per port method, not one per test
def _port_argument_binder(port: type, name: str) -> ArgumentBinder:
    return _argument_binder(inspect.signature(getattr(port, name)))


def _argument_binder(signature: inspect.Signature) -> ArgumentBinder:
    """The call's arguments by parameter name, defaults included (``self`` left out): what
    ``Signature.bind`` and ``apply_defaults`` give, at a fraction of their cost on the common
    call; an unusual or wrong call goes through them, which raise the usual TypeError."""
    parameters = list(signature.parameters.values())
    positional = [p.name for p in parameters[1:] if p.kind is p.POSITIONAL_OR_KEYWORD]
    named = {p.name for p in parameters[1:] if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    defaults = {p.name: p.default for p in parameters[1:] if p.default is not p.empty}
    simple = len(named) == len(parameters) - 1  # no *args, **kwargs or positional-only

    def slow(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Arguments:
        bound = signature.bind(None, *args, **kwargs)
        bound.apply_defaults()
        return {name: value for name, value in bound.arguments.items() if name != "self"}

    def fast(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Arguments:
        if len(args) > len(positional):
            return slow(args, kwargs)
        arguments = {**defaults, **dict(zip(positional, args, strict=False))}
        for name, value in kwargs.items():
            if name not in named or name in positional[: len(args)]:
                return slow(args, kwargs)
            arguments[name] = value
        return arguments if len(arguments) == len(named) else slow(args, kwargs)

    return fast if simple else slow


class RecordingSubscription(RecordingPort):
    def __init__(self, wrapped: Subscription, bus: RecordingEventBus) -> None:
        super().__init__(wrapped, Subscription, bus._recording_trace, bus._recording_bind)
        self._recording_bus = bus

    async def aclose(self) -> None:
        await self._port_call("aclose")()
        self._recording_bus.forget(self)

    def __aiter__(self) -> AsyncIterator[RunEvent]:
        # Looked up on the type by ``async for``, so never reached through __getattr__.
        iterator: AsyncIterator[RunEvent] = self.__wrapped__.__aiter__()
        return iterator


class RecordingEventBus(RecordingPort):
    """Also remembers which subscriptions are still open."""

    def __init__(self, wrapped: EventBusPort, trace: Trace, bind: Bind = _unbound) -> None:
        super().__init__(wrapped, EventBusPort, trace, bind)
        self._recording_open: list[tuple[str, RecordingSubscription]] = []

    async def subscribe(self, run_id: str) -> Subscription:
        subscription = await self._port_call("subscribe")(run_id)
        recorded = RecordingSubscription(subscription, self)
        self._recording_open.append((run_id, recorded))
        return cast(Subscription, recorded)

    def forget(self, subscription: RecordingSubscription) -> None:
        self._recording_open = [(r, s) for r, s in self._recording_open if s is not subscription]

    def open_subscription_run_ids(self) -> list[str]:
        """Run ids of the subscriptions opened through this bus and not closed."""
        return [run_id for run_id, _ in self._recording_open]

    async def aclose(self) -> None:
        await self._port_call("aclose")()
        self._recording_open.clear()


@asynccontextmanager
async def _entered_on_the_loop(
    context: AbstractAsyncContextManager[Any], bind: Bind
) -> AsyncIterator[Any]:
    await bind()
    async with context as value:
        yield value


def recording_infra(infra: Infra, trace: Trace, bind: Bind = _unbound) -> Infra:
    """``infra`` with its three ports recorded into ``trace``; ids and clock are shared.
    ``bind`` is awaited before every port call."""
    # What dataclasses.replace gives, without checking again the fields that ``infra`` checked.
    recorded = copy.copy(infra)
    for name, port in (
        ("bus", RecordingEventBus(infra.bus, trace, bind)),
        ("queue", RecordingPort(infra.queue, QueuePort, trace, bind)),
        ("store", RecordingPort(infra.store, RunStorePort, trace, bind)),
    ):
        object.__setattr__(recorded, name, port)
    return recorded


def open_subscription_run_ids(infra: Infra) -> list[str]:
    """Run ids of the subscriptions a test's recorded infra has open, on any adapter."""
    bus = infra.bus
    return bus.open_subscription_run_ids() if isinstance(bus, RecordingEventBus) else []
