"""The recording layer cannot miss a port method: every method of every port in
``agents_run.ports`` is in ``PORT_METHODS``, as an effect (recorded) or a read (not recorded), and
every call notes the event loop before it reaches the adapter."""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import AsyncIterator
from typing import Any, Protocol

import pytest

import agents_run.ports
from agents_run import Infra, RunEvent
from agents_run.ports import QueuePort
from pytest_agents_run.recording import (
    NOT_WRAPPED,
    PORT_METHODS,
    READ,
    Read,
    RecordingPort,
    Trace,
    UnlistedPortMethod,
    _argument_binder,
    port_methods,
    recording_infra,
    table_gaps,
)


def protocols_of_the_ports() -> set[str]:
    return {
        name
        for name, value in vars(agents_run.ports).items()
        if inspect.isclass(value)
        and getattr(value, "_is_protocol", False)
        and value.__module__ == agents_run.ports.__name__
    }


def test_every_protocol_of_the_ports_is_wrapped_or_said_why_not() -> None:
    wrapped = {port.__name__ for port in PORT_METHODS}
    assert protocols_of_the_ports() == wrapped | NOT_WRAPPED.keys()
    assert not wrapped & NOT_WRAPPED.keys()


def test_every_method_of_every_port_is_an_effect_or_a_read() -> None:
    assert table_gaps() == []


def test_a_port_method_left_out_of_the_table_is_found() -> None:
    # The mistake this guards against: a hand-written proxy forgot has_live_job and nothing failed.
    queue_methods = dict(PORT_METHODS[QueuePort])
    del queue_methods["has_live_job"]
    assert table_gaps({**PORT_METHODS, QueuePort: queue_methods}) == [
        "QueuePort.has_live_job: neither an effect nor a read"
    ]


class PeekingQueuePort(QueuePort, Protocol):
    """A port that gained a method the table does not list yet."""

    async def peek(self) -> str | None: ...


def test_a_method_added_to_a_port_is_found_until_the_table_lists_it() -> None:
    table = {**PORT_METHODS, PeekingQueuePort: PORT_METHODS[QueuePort]}
    assert table_gaps(table) == ["PeekingQueuePort.peek: neither an effect nor a read"]
    table = {**PORT_METHODS, PeekingQueuePort: {**PORT_METHODS[QueuePort], "peek": READ}}
    assert table_gaps(table) == []


def test_a_listed_name_that_is_no_method_of_its_port_is_found() -> None:
    table = {**PORT_METHODS, QueuePort: {**PORT_METHODS[QueuePort], "take": READ}}
    assert table_gaps(table) == ["QueuePort.take: listed, but not a method of the port"]


class Peeking:
    async def peek(self) -> str:
        return "job"


async def test_a_proxy_refuses_a_port_method_missing_from_its_table() -> None:
    async def bind() -> None: ...

    proxy: Any = RecordingPort(Peeking(), PeekingQueuePort, Trace(), bind, methods={})
    with pytest.raises(UnlistedPortMethod, match=r"PeekingQueuePort\.peek is in neither"):
        await proxy.peek()
    listed: Any = RecordingPort(Peeking(), PeekingQueuePort, Trace(), bind, {"peek": READ})
    assert await listed.peek() == "job"


def stub_adapter(port: type, calls: list[str]) -> object:
    """An adapter of ``port`` whose every method notes its name (and returns nothing)."""
    stub = type(f"Stub{port.__name__}", (), {})()
    for name in port_methods(port):
        if inspect.iscoroutinefunction(getattr(port, name)):

            async def method(*args: object, _name: str = name, **kwargs: object) -> None:
                calls.append(_name)

        else:

            @contextlib.asynccontextmanager
            async def method(  # type: ignore[misc]
                *args: object, _name: str = name, **kwargs: object
            ) -> AsyncIterator[None]:
                calls.append(_name)
                yield

        setattr(stub, name, method)
    return stub


@pytest.mark.parametrize("port", list(PORT_METHODS), ids=lambda port: port.__name__)
async def test_every_read_notes_the_loop_first_and_records_nothing(port: type) -> None:
    calls: list[str] = []

    async def bind() -> None:
        calls.append("bind")

    trace = Trace()
    proxy: Any = RecordingPort(stub_adapter(port, calls), port, trace, bind)
    reads = [
        name
        for name, kind in PORT_METHODS[port].items()
        if isinstance(kind, Read) and not name.startswith("_")
    ]
    for name in reads:
        calls.clear()
        called = getattr(proxy, name)()
        if inspect.isawaitable(called):
            await called
        else:
            async with called:
                pass
        assert calls == ["bind", name]
    assert trace.entries == []


class _Signatures:
    async def positional(self, run_id: str, limit: int = 5) -> None: ...

    async def keyword_only(self, run_id: str, *, at: int, status: str | None = None) -> None: ...


@pytest.mark.parametrize(
    ("method", "args", "kwargs"),
    [
        ("positional", ("r",), {}),
        ("positional", ("r", 3), {}),
        ("positional", (), {"run_id": "r", "limit": 2}),
        ("keyword_only", ("r",), {"at": 1}),
        ("keyword_only", (), {"run_id": "r", "at": 1, "status": "s"}),
    ],
)
def test_effect_arguments_are_bound_by_name_with_defaults_as_signature_bind_does(
    method: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    signature = inspect.signature(getattr(_Signatures, method))
    bound = signature.bind(None, *args, **kwargs)
    bound.apply_defaults()
    expected = {name: value for name, value in bound.arguments.items() if name != "self"}
    assert _argument_binder(signature)(args, kwargs) == expected


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [((), {}), (("r", 1, 2), {}), (("r",), {"run_id": "again"}), (("r",), {"nope": 1})],
)
def test_a_wrong_call_to_an_effect_raises_the_usual_type_error(
    args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    with pytest.raises(TypeError):
        _argument_binder(inspect.signature(_Signatures.positional))(args, kwargs)


async def test_a_published_batch_is_recorded_as_one_publish_per_event() -> None:
    events = [RunEvent("run-1", seq, "RunStep", {"n": seq}) for seq in (1, 2)]
    trace = Trace()
    recorded = recording_infra(Infra.in_memory(), trace)
    await recorded.bus.publish_batch(events)
    await recorded.bus.publish(RunEvent("run-1", 3, "RunFinished"))
    assert trace.entries == [
        {"op": "publish", "run_id": "run-1", "seq": seq, "type": type_}
        for seq, type_ in ((1, "RunStep"), (2, "RunStep"), (3, "RunFinished"))
    ]
