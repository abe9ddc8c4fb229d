"""Run ids and time, the two things besides the ports that an ``Infra`` provides.

For production (the defaults of a hand-built ``Infra``): ``RandomIds``, unique across processes
and machines, and ``SystemClock``, the wall clock. For tests and ``Infra.in_memory()``:
``SequentialIds`` and ``ManualClock``, which do the same on every run.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from datetime import UTC, datetime, timedelta

DEFAULT_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


class RandomIds:
    """Run ids ``run-<32 hex digits>``, unique across processes and machines."""

    def new_run_id(self) -> str:
        return f"run-{uuid.uuid4().hex}"


class SystemClock:
    """The wall clock, in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class SequentialIds:
    """Run ids ``run-000001``, ``run-000002``, ... in creation order."""

    guessable = True  # the HTTP layer refuses to serve such ids unless told it is a test

    def __init__(self, prefix: str = "run-") -> None:
        self._prefix = prefix
        self._counter = itertools.count(1)

    def new_run_id(self) -> str:
        return f"{self._prefix}{next(self._counter):06d}"


class ManualClock:
    """A clock that stands still until ``advance`` or ``set`` moves it."""

    def __init__(self, start: datetime = DEFAULT_EPOCH) -> None:
        self._now = start

    def now(self) -> datetime:
        return self._now

    def set(self, when: datetime) -> None:
        self._now = when

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)

    async def sleep(self, seconds: float) -> None:
        """Time-skipping: move the clock and return after one loop turn (no timer)."""
        self.advance(seconds)
        await asyncio.sleep(0)
