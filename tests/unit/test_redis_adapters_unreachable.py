"""The Redis adapters against a port where nothing listens: a clear, redacted error, no hang."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable

import pytest

from agents_run import InfraUnavailable, RunEvent
from agents_run.adapters.bullmq_queue import BullMQQueue
from agents_run.adapters.redis_bus import RedisEventBus
from agents_run.ports import Job

# A guard against hanging, far above the 0.5 s connect timeout the adapters get here.
NO_HANG = 30.0


@pytest.fixture
def unreachable_url() -> str:
    """A Redis URL with a password, on a loopback port that was free a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"redis://:s3cret@127.0.0.1:{port}/0"


async def assert_unavailable(call: Awaitable[object], url: str, doing: str) -> None:
    with pytest.raises(InfraUnavailable) as raised:
        async with asyncio.timeout(NO_HANG):
            await call
    message = str(raised.value)
    assert "s3cret" not in message
    assert url.replace("s3cret", "***") in message
    assert f"did not answer while {doing}" in message
    assert "check that the server runs" in message


@pytest.mark.parametrize(
    ("doing", "call"),
    [
        ("publishing", lambda bus: bus.publish(RunEvent("run-1", 1, "RunStarted"))),
        ("subscribing", lambda bus: bus.subscribe("run-1")),
    ],
)
async def test_the_bus_raises_infra_unavailable(
    unreachable_url: str, doing: str, call: Callable[[RedisEventBus], Awaitable[object]]
) -> None:
    bus = RedisEventBus(unreachable_url, key_prefix="unit", connect_timeout=0.5)
    await assert_unavailable(call(bus), unreachable_url, doing)
    assert bus.open_subscriptions() == []
    await bus.aclose()


@pytest.mark.parametrize(
    ("doing", "call"),
    [
        ("adding the job of run run-1", lambda queue: queue.enqueue("run-1")),
        ("taking the next job", lambda queue: queue.take_next()),
        ("counting jobs", lambda queue: queue.counts()),
        ("checking for stalled jobs", lambda queue: queue.recover_stalled()),
        ("reading the job state of run run-1", lambda queue: queue.has_live_job("run-1")),
    ],
)
async def test_the_queue_raises_infra_unavailable(
    unreachable_url: str, doing: str, call: Callable[[BullMQQueue], Awaitable[object]]
) -> None:
    queue = BullMQQueue(unreachable_url, key_prefix="unit", connect_timeout=0.5)
    await assert_unavailable(call(queue), unreachable_url, doing)
    await queue.aclose()


async def test_a_run_id_that_bullmq_cannot_use_as_a_job_id_is_refused(unreachable_url: str) -> None:
    queue = BullMQQueue(unreachable_url, key_prefix="unit", connect_timeout=0.5)
    with pytest.raises(ValueError, match="use no ':'"):
        await queue.enqueue("run:1")
    with pytest.raises(ValueError, match="not active"):
        await queue.complete(Job(run_id="run-1"))
    await queue.aclose()


async def test_the_password_shows_in_no_repr_error_or_log_line(
    unreachable_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    bus = RedisEventBus(unreachable_url, key_prefix="unit", connect_timeout=0.5)
    queue = BullMQQueue(unreachable_url, key_prefix="unit", connect_timeout=0.5)
    shown = [repr(bus), repr(queue)]
    for call in (bus.publish(RunEvent("run-1", 1, "RunStarted")), queue.enqueue("run-1")):
        with pytest.raises(InfraUnavailable) as raised:
            async with asyncio.timeout(NO_HANG):
                await call
        shown += [str(raised.value), repr(raised.value)]
    await bus.aclose()
    await queue.aclose()
    shown += [record.getMessage() for record in caplog.records]
    assert all("s3cret" not in text for text in shown)
    assert "127.0.0.1" in shown[2]  # the server is still named
