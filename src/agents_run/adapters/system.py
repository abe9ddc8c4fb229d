"""Ids and time for production: random run ids and the wall clock."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime


class RandomIds:
    """Run ids ``run-<32 hex digits>``, unique across processes and machines."""

    def new_run_id(self) -> str:
        return f"run-{uuid.uuid4().hex}"


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
