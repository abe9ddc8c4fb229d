"""What the server tests share: their limits, a bounded wait, and ``serve`` run as a task."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable

import pytest

from agents_run import get_infra
from agents_run.entrypoints.serve import serve
from agents_run.http import HttpLimits, create_app
from tests.integration.http_client import DEADLINE

LIMITS = HttpLimits(
    max_body_bytes=4096,
    request_timeout=DEADLINE,
    keepalive_interval=0.05,
    poll_interval=0.05,
    shutdown_timeout=DEADLINE,
)


async def eventually(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    async def poll() -> None:
        while not await condition():  # noqa: ASYNC110 - what is polled offers no event
            await asyncio.sleep(0.01)

    try:
        await asyncio.wait_for(poll(), DEADLINE)
    except TimeoutError:
        pytest.fail(f"still not true after {DEADLINE}s: {what}")


async def serving_in_process(
    stop: asyncio.Event, *, grace: float
) -> tuple[asyncio.Task[int], int, list[str]]:
    """``serve`` with its in-process worker, as a task; returns it, its port and what it said."""
    said: list[str] = []
    app = create_app(get_infra(), limits=LIMITS, allow_guessable_ids=True)
    serving = asyncio.create_task(
        serve(
            app,
            "127.0.0.1",
            0,
            in_process_worker=True,
            grace=grace,
            say=said.append,
            stop=stop,
            stop_signals=(),
            idle_poll=0.01,
            limits=LIMITS,
        )
    )

    async def listening() -> bool:
        return bool(said)

    await eventually(listening, "serve said where it listens")
    return serving, int(re.findall(r"http://127\.0\.0\.1:(\d+)", said[0])[0]), said
