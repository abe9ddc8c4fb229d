from __future__ import annotations

import asyncio
import logging

import pytest

from agents_run import Infra, InvalidArgument, run_worker_once, start_run
from agents_run.application.publisher_process import serve_publisher

DEADLINE = 5.0


async def test_the_publisher_publishes_as_rows_appear_then_once_more_when_draining(
    infra: Infra,
) -> None:
    run_id = await start_run("echo", {"text": "a"})
    subscription = await infra.bus.subscribe(run_id)
    draining = asyncio.Event()
    publisher = asyncio.create_task(serve_publisher(draining=draining, idle_poll=0.01))
    try:
        await run_worker_once()
        received = [await subscription.next_event(timeout=DEADLINE) for _ in range(3)]
        assert [event.type for event in received if event] == [
            "RunStarted",
            "RunStep",
            "RunFinished",
        ]
        late = await start_run("echo", {"text": "b"})
        await run_worker_once()  # appended just before the drain: published on the way out
        draining.set()
        assert await asyncio.wait_for(publisher, DEADLINE) == 6
    finally:
        await subscription.aclose()
    assert await infra.store.pending_outbox() == []
    assert (await infra.store.get_run(late)).status == "finished"


async def test_a_publishing_error_is_logged_and_retried(
    infra: Infra, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    draining = asyncio.Event()
    real_publish = infra.bus.publish
    calls = 0

    async def flaky_publish(event):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("redis restarting")
        await real_publish(event)
        if calls == 4:  # the failed call, then the run's three events
            draining.set()

    monkeypatch.setattr(infra.bus, "publish", flaky_publish)
    await start_run("echo", {"text": "a"})
    await run_worker_once()
    with caplog.at_level(logging.ERROR, logger="agents_run.publisher"):
        published = await asyncio.wait_for(
            serve_publisher(draining=draining, idle_poll=0.01), DEADLINE
        )
    assert published == 3
    assert "publishing failed; retrying" in caplog.text
    assert await infra.store.pending_outbox() == []


@pytest.mark.parametrize("idle_poll", [0, -1, True, "1"])
async def test_idle_poll_must_be_a_positive_number(infra: Infra, idle_poll: object) -> None:
    with pytest.raises(InvalidArgument, match="idle_poll"):
        await serve_publisher(draining=asyncio.Event(), idle_poll=idle_poll)  # type: ignore[arg-type]
