"""The payload limit as users meet it: a run input, a yielded event or a ``ctx.step`` result over
``AGENTS_RUN_MAX_PAYLOAD_BYTES`` (1 MiB of JSON by default) is refused with ``PayloadTooLarge``,
at once, with nothing of it kept; over HTTP the answer is a 413."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from agents_run import (
    Infra,
    InfraConfigError,
    InMemoryEventBus,
    InMemoryQueue,
    InMemoryRunStore,
    PayloadTooLarge,
    RunContext,
    run_until_idle,
    start_run,
    wait_for_run,
)
from agents_run.config import read_config
from agents_run.domain.json_data import DEFAULT_MAX_PAYLOAD_BYTES
from agents_run.http import create_app
from agents_run.ports import QueueCounts

pytestmark = pytest.mark.deterministic

DEADLINE = 30.0
HUGE = "x" * DEFAULT_MAX_PAYLOAD_BYTES  # over the limit once inside any JSON object


async def test_start_run_refuses_an_input_over_the_limit_and_keeps_nothing(
    infra: Infra,
) -> None:
    with pytest.raises(PayloadTooLarge, match="run input is 1048587 bytes as JSON"):
        await start_run("echo", {"text": HUGE})
    assert await infra.store.count_pending_outbox() == 0
    assert await infra.queue.counts() == QueueCounts(waiting=0, active=0)


async def test_an_agent_yielding_an_event_over_the_limit_ends_its_run_failed_once(
    infra: Infra, register: Callable[..., Callable[[Any], Any]]
) -> None:
    @register("yields-too-much")
    async def agent(input: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        yield {"text": "fine"}
        yield {"text": HUGE}
        yield {"text": "never reached"}

    run_id = await start_run("yields-too-much", {})
    await run_until_idle()
    terminal = await wait_for_run(run_id, timeout=DEADLINE)
    events = await infra.store.read_events(run_id)
    assert [event.type for event in events] == ["RunStarted", "RunStep", "RunFailed"]
    assert terminal.data["error_type"] == "PayloadTooLarge"
    assert "data of RunStep event is 1048587 bytes" in terminal.data["message"]
    assert await infra.queue.counts() == QueueCounts(waiting=0, active=0)  # no crash loop


async def test_a_step_result_over_the_limit_is_raised_into_the_agent_and_not_recorded(
    infra: Infra, register: Callable[..., Callable[[Any], Any]]
) -> None:
    @register("steps-too-much")
    async def agent(input: dict[str, Any], ctx: RunContext) -> AsyncIterator[dict[str, Any]]:
        try:
            await ctx.step("fetch", lambda: HUGE)
        except PayloadTooLarge as error:
            yield {"refused": type(error).__name__}
        yield {"then": await ctx.step("small", lambda: "ok")}

    run_id = await start_run("steps-too-much", {})
    await run_until_idle()
    await wait_for_run(run_id, timeout=DEADLINE)
    events = await infra.store.read_events(run_id)
    assert [(event.type, event.data) for event in events[1:]] == [
        ("RunStep", {"refused": "PayloadTooLarge"}),
        ("RunStep", {"then": "ok"}),
        ("RunFinished", {}),
    ]
    # The refused step took no index: the journal stays gap-free for a resume.
    assert [(step.index, step.name) for step in await infra.store.read_steps(run_id)] == [
        (1, "small")
    ]


async def test_post_runs_answers_413_payload_too_large_and_starts_nothing() -> None:
    limit = 16_384  # the smallest limit, so the body stays under the HTTP body limit (1 MiB)
    small = Infra(
        bus=InMemoryEventBus(),
        queue=InMemoryQueue(),
        store=InMemoryRunStore(max_payload_bytes=limit),
    )
    transport = httpx.ASGITransport(app=create_app(small))
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http,
        asyncio.timeout(DEADLINE),
    ):
        answer = await http.post("/runs", json={"agent": "echo", "input": {"text": "x" * limit}})
    assert answer.status_code == 413
    assert answer.json()["error"]["type"] == "PayloadTooLarge"
    assert "run input is 16395 bytes as JSON, over the limit of 16384" in answer.text
    assert "Traceback" not in answer.text
    assert await small.store.count_pending_outbox() == 0
    assert await small.queue.counts() == QueueCounts(waiting=0, active=0)


def test_the_limit_is_read_from_agents_run_max_payload_bytes() -> None:
    assert read_config({}).max_payload_bytes == DEFAULT_MAX_PAYLOAD_BYTES
    assert read_config({"AGENTS_RUN_MAX_PAYLOAD_BYTES": "65536"}).max_payload_bytes == 65_536
    for bad in ("1", "x", "-5", "1e6", "99999999999999", "16384.5"):
        with pytest.raises(InfraConfigError, match=r"AGENTS_RUN_MAX_PAYLOAD_BYTES=.* from 16384"):
            read_config({"AGENTS_RUN_MAX_PAYLOAD_BYTES": bad})
