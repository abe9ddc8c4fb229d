"""Agents for the cross-process tests, imported by the worker process (``--agents``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from agents_run import register_agent
from agents_run.domain.json_data import JsonObject

STEP_SECONDS = 0.02


@register_agent("slow-echo")
async def slow_echo(input: JsonObject) -> AsyncIterator[JsonObject]:
    """``echo`` with a pause before each word, so that streams see the run while it runs."""
    for word in str(input["text"]).split():
        await asyncio.sleep(STEP_SECONDS)
        yield {"text": word}
