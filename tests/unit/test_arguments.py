"""Every timing and count parameter is checked the same way: a bool, NaN, infinity, a string or a
number out of range is refused with ``InvalidArgument`` naming the parameter, before any I/O."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agents_run import InvalidArgument, run_worker_once
from agents_run.adapters.bullmq_queue import BullMQQueue
from agents_run.adapters.postgres_store import PostgresRunStore
from agents_run.adapters.redis_bus import RedisEventBus
from agents_run.adapters.sqlite_store import SqliteRunStore
from agents_run.application.processes import serve_publisher, serve_worker
from agents_run.arguments import require_positive_int, require_seconds

NOT_SECONDS = [True, False, math.nan, math.inf, -1, -0.5, "1", None]
NOT_COUNTS = [True, 0, -1, 1.0, 2.5, "3", None]


@pytest.mark.parametrize("value", NOT_SECONDS)
def test_seconds_must_be_a_finite_number_and_not_a_bool(value: object) -> None:
    with pytest.raises(InvalidArgument, match=r"^delay must be seconds >= 0, got "):
        require_seconds(value, "delay")


@pytest.mark.parametrize("value", [0, 0.0])
def test_zero_seconds_are_refused_where_a_positive_duration_is_needed(value: object) -> None:
    assert require_seconds(value, "delay") == 0
    with pytest.raises(InvalidArgument, match=r"^delay must be seconds > 0, got 0"):
        require_seconds(value, "delay", positive=True)


@pytest.mark.parametrize("value", NOT_COUNTS)
def test_counts_must_be_ints_of_at_least_one_and_not_bools(value: object) -> None:
    with pytest.raises(InvalidArgument, match=r"^limit must be an int >= 1, got "):
        require_positive_int(value, "limit")


def test_good_values_are_returned_unchanged() -> None:
    assert require_seconds(1.5, "delay", positive=True) == 1.5
    assert require_positive_int(3, "limit") == 3


POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
REDIS = "redis://127.0.0.1:6379/0"

# Each entry: the parameter, and a call that passes it the bad value (constructors do no I/O).
SECONDS_PARAMETERS: list[tuple[str, Callable[[Any, Path], object]]] = [
    ("connect_timeout", lambda v, _: PostgresRunStore(POSTGRES, connect_timeout=v)),
    ("busy_timeout", lambda v, tmp: SqliteRunStore(tmp / "db", busy_timeout=v)),
    ("claim_lease", lambda v, tmp: SqliteRunStore(tmp / "db", claim_lease=v)),
    ("poll_interval", lambda v, tmp: SqliteRunStore(tmp / "db", poll_interval=v)),
    ("connect_timeout", lambda v, _: RedisEventBus(REDIS, key_prefix="t", connect_timeout=v)),
    ("connect_timeout", lambda v, _: BullMQQueue(REDIS, key_prefix="t", connect_timeout=v)),
    ("idle_poll", lambda v, _: _serve_worker(idle_poll=v)),
    ("stalled_check_interval", lambda v, _: _serve_worker(stalled_check_interval=v)),
    ("sweep_interval", lambda v, _: _serve_worker(sweep_interval=v)),
    ("idle_wait", lambda v, _: _run(serve_publisher(stop=asyncio.Event(), idle_wait=v))),
]
COUNT_PARAMETERS: list[tuple[str, Callable[[Any, Path], object]]] = [
    ("max_connections", lambda v, _: PostgresRunStore(POSTGRES, max_connections=v)),
    ("lock_duration_ms", lambda v, _: BullMQQueue(REDIS, key_prefix="t", lock_duration_ms=v)),
    ("stalled_interval_ms", lambda v, _: BullMQQueue(REDIS, key_prefix="t", stalled_interval_ms=v)),
    ("retry_delay_ms", lambda v, _: BullMQQueue(REDIS, key_prefix="t", retry_delay_ms=v)),
    ("concurrency", lambda v, _: _serve_worker(concurrency=v)),
    ("max_steps", lambda v, _: _run(run_worker_once(max_steps=v))),
]


def _run(call: Any) -> object:
    return asyncio.run(call)


def _serve_worker(**bad: object) -> object:
    return _run(serve_worker(draining=asyncio.Event(), stop=asyncio.Event(), **bad))  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [True, 0, math.nan])
@pytest.mark.parametrize(("name", "call"), SECONDS_PARAMETERS)
def test_every_timing_parameter_is_checked_as_seconds(
    name: str, call: Callable[[Any, Path], object], value: object, tmp_path: Path
) -> None:
    with pytest.raises(InvalidArgument, match=rf"^{name} must be seconds > 0, got {value!r}"):
        call(value, tmp_path)


@pytest.mark.parametrize("value", [True, 0, 1.5])
@pytest.mark.parametrize(("name", "call"), COUNT_PARAMETERS)
def test_every_count_parameter_is_checked_as_a_count(
    name: str, call: Callable[[Any, Path], object], value: object, tmp_path: Path
) -> None:
    with pytest.raises(InvalidArgument, match=rf"^{name} must be an int >= 1, got {value!r}"):
        call(value, tmp_path)
