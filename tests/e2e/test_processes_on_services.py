"""Worker and publisher as separate processes on Redis and PostgreSQL: runs started here are
executed there, and streamed back here complete, in order and without gaps."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import pytest

import tests.e2e.slow_agents  # noqa: F401 - registers slow-echo here too, for start_run's check
from agents_run import RunEvent, start_run, stream_run, use_infra
from agents_run.config import InfraConfig, build_infra
from tests.services import process_env

pytestmark = pytest.mark.deterministic

DEADLINE = 60.0
WORDS = "one two three four five six seven eight"


@contextmanager
def agents_run_process(config: InfraConfig, *args: str) -> Iterator[subprocess.Popen[str]]:
    """``agents-run ARGS`` on ``config``; stopped with SIGTERM afterwards, which it must obey."""
    process = subprocess.Popen(
        [sys.executable, "-m", "agents_run.entrypoints.cli", *args],
        env=process_env(config),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            _, log = process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            _, log = process.communicate()
            pytest.fail(f"agents-run {args[0]} ignored SIGTERM for 20 s:\n{log}")
    assert process.returncode == 0, f"agents-run {args[0]} exited {process.returncode}:\n{log}"


async def collect(events: AsyncIterator[RunEvent]) -> list[RunEvent]:
    return [event async for event in events]


def expected_words() -> list[str | None]:
    return [None, *WORDS.split(), None]


async def test_runs_executed_by_other_processes_stream_back_whole(
    services_config: InfraConfig,
) -> None:
    infra = build_infra(services_config)
    with (
        agents_run_process(
            services_config, "worker", "--concurrency", "2", "--agents", "tests.e2e.slow_agents"
        ),
        agents_run_process(services_config, "publisher"),
        use_infra(infra),
    ):
        try:
            async with asyncio.timeout(DEADLINE):
                run_ids = [await start_run("slow-echo", {"text": WORDS}) for _ in range(4)]
                live = await asyncio.gather(
                    *(collect(stream_run(run_id, idle_timeout=30)) for run_id in run_ids)
                )
                from_the_middle = await collect(stream_run(run_ids[0], from_seq=5))
        finally:
            await infra.aclose()

    for events in live:
        assert [e.seq for e in events] == list(range(1, 11))
        assert [e.type for e in events] == ["RunStarted"] + ["RunStep"] * 8 + ["RunFinished"]
        assert [e.data.get("text") for e in events] == expected_words()
    assert [e.seq for e in from_the_middle] == list(range(5, 11))
    assert from_the_middle == live[0][4:]
