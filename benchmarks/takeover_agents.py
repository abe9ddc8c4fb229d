"""The agent of ``benchmarks.lease_takeover``, imported by its worker processes (``--agents``)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

from agents_run import register_agent
from agents_run.domain.json_data import JsonObject


@register_agent("records-its-pid")
async def records_its_pid(input: JsonObject) -> AsyncIterator[JsonObject]:
    """Records which worker process runs it, then waits to be killed with that worker."""
    yield {"pid": os.getpid()}
    await asyncio.sleep(3600)
    yield {}
