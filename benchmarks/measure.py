"""Paired measurements: a contender and its anchor timed side by side, repeated, as a ratio.

Every figure of docs/benchmarks.md is a ratio against an anchor measured in the same run, so
that load from other processes moves both sides alike; the median and the spread (lowest and
highest) of the repeated pairs are what the table quotes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import psycopg
import redis.asyncio as redis

REDIS_URL = os.environ.get("AGENTS_RUN_TEST_REDIS_URL") or "redis://127.0.0.1:6379/0"
POSTGRES_URL = (
    os.environ.get("AGENTS_RUN_TEST_POSTGRES_URL") or "postgresql://postgres@127.0.0.1:5432/test"
)


@dataclass(frozen=True)
class Figure:
    """One row of the table: ``values`` are the per-pair ratios (or differences)."""

    id: str
    measure: str
    anchor: str
    values: Sequence[float]
    target: str
    unit: str = "x"  # "x": a ratio; "ms": a difference in milliseconds
    higher_is_better: bool = True
    limit: float | None = None  # the target as a number, where it is one
    detail: str = ""  # absolute rates of this run, for orientation

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def meets_target(self) -> bool | None:
        if self.limit is None:
            return None
        return self.median >= self.limit if self.higher_is_better else self.median <= self.limit

    def row(self) -> str:
        low, high = min(self.values), max(self.values)
        show = _show_ms if self.unit == "ms" else _show_ratio
        met = {True: "yes", False: "no", None: "-"}[self.meets_target]
        return (
            f"| {self.id} | {self.measure} | {self.anchor} | {show(self.median)} | "
            f"{show(low)} to {show(high)} | {len(self.values)} | {self.target} | {met} |"
            + (f" {self.detail} |" if self.detail else " |")
        )


HEADER = (
    "| id | measure | compared with | median | spread | pairs | target | met | this run |\n"
    "|---|---|---|---:|---:|---:|---|---|---|"
)


def _show_ratio(value: float) -> str:
    return f"{value:.2f}x"


def _show_ms(value: float) -> str:
    return f"{value:+.1f} ms"


def table(figures: Sequence[Figure]) -> str:
    return "\n".join([HEADER, *(figure.row() for figure in figures)])


def timed(work: Callable[[], object]) -> float:
    began = time.perf_counter()
    work()
    return time.perf_counter() - began


async def timed_async(work: Callable[[], Awaitable[object]]) -> float:
    began = time.perf_counter()
    await work()
    return time.perf_counter() - began


def alternate(pairs: int, *sides: Callable[[], float]) -> list[list[float]]:
    """Each side's measurements over ``pairs`` rounds, the order turning each round so that
    neither side always runs first (warm caches, a load that comes and goes)."""
    results: list[list[float]] = [[] for _ in sides]
    for round_ in range(pairs):
        order = list(range(len(sides)))
        if round_ % 2:
            order.reverse()
        for index in order:
            results[index].append(sides[index]())
    return results


async def alternate_async(pairs: int, *sides: Callable[[], Awaitable[float]]) -> list[list[float]]:
    """``alternate`` for coroutine functions."""
    results: list[list[float]] = [[] for _ in sides]
    for round_ in range(pairs):
        order = list(range(len(sides)))
        if round_ % 2:
            order.reverse()
        for index in order:
            results[index].append(await sides[index]())
    return results


def ratios(numerators: Sequence[float], denominators: Sequence[float]) -> list[float]:
    return [n / d for n, d in zip(numerators, denominators, strict=True)]


def pytest_cpu_seconds(folder: Path, *arguments: str) -> float:
    """CPU time (user and system) of one ``pytest`` run in ``folder`` and of the processes it
    waited for (xdist's workers): a subprocess, as a user runs it. CPU time rather than wall
    time, because on a machine shared with other suites the wall time of a run of seconds
    moved by more than the plugin costs; the CPU a run needed moves much less."""
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *arguments]
    # With bytecode caches, as users run it: without them every start compiles (and pytest
    # rewrites) every plugin's modules again, a cost of the environment rather than of a plugin.
    env = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    finished = subprocess.run(
        command, cwd=folder, env=env, capture_output=True, text=True, check=False
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if finished.returncode not in (0, 5):  # 5: no tests collected, as in an empty folder
        raise RuntimeError(
            f"pytest {' '.join(arguments)} in {folder} exited {finished.returncode}:\n"
            + finished.stdout[-3000:]
            + finished.stderr[-3000:]
        )
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def machine() -> str:
    """Cores, load, Python and the servers' versions, for the table's caption."""
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    parts = [
        f"{os.cpu_count()} cores (load {load})",
        f"Python {platform.python_version()}",
        *asyncio.run(_server_versions()),
    ]
    return "; ".join(parts)


async def _server_versions() -> list[str]:
    versions = []
    try:
        client = redis.Redis.from_url(REDIS_URL)
        try:
            info = await client.info("server")
            versions.append(f"Redis {info['redis_version']}")
        finally:
            await client.aclose()
    except Exception as error:
        versions.append(f"Redis unreachable ({type(error).__name__})")
    try:
        async with await psycopg.AsyncConnection.connect(POSTGRES_URL) as connection:
            cursor = await connection.execute("show server_version")
            row = await cursor.fetchone()
            versions.append(f"PostgreSQL {row[0] if row else '?'}")
    except Exception as error:
        versions.append(f"PostgreSQL unreachable ({type(error).__name__})")
    return versions


def main(figures: Callable[[bool], Sequence[Figure]]) -> None:
    """The command line of each figure's script: ``[--quick]``, a Markdown table on stdout."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="less work, fewer pairs: a smoke run")
    quick = parser.parse_args().quick
    print(table(figures(quick)))
