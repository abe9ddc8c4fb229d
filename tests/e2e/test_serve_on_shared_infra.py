"""``agents-run serve`` on Redis, BullMQ and PostgreSQL, with the worker and the publisher in
processes of their own: runs started over HTTP are executed elsewhere and streamed back."""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from agents_run.config import InfraConfig
from tests.integration.http_client import open_event_stream, request
from tests.services import process_env
from tests.wire_format import EVENT_SCHEMA, violations

DEADLINE = 20.0
AGENTS_RUN = str(Path(sys.executable).with_name("agents-run"))


@pytest.fixture
def shared_infra_env(services_config: InfraConfig) -> dict[str, str]:
    """The environment of processes that share a fresh Redis namespace and PostgreSQL schema."""
    return process_env(services_config)


async def stop_gracefully(process: asyncio.subprocess.Process) -> int:
    try:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), DEADLINE)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    code = process.returncode
    assert code is not None
    return code


async def test_runs_started_over_http_are_executed_by_a_worker_process_and_streamed_back(
    shared_infra_env: dict[str, str], tmp_path: Path
) -> None:
    logs = {name: tmp_path / f"{name}.log" for name in ("serve", "worker", "publisher")}
    processes: list[asyncio.subprocess.Process] = []
    with contextlib.ExitStack() as files:
        err = {name: files.enter_context(path.open("wb")) for name, path in logs.items()}
        try:
            for command in (["worker"], ["publisher"], ["serve", "--port", "0"]):
                processes.append(
                    await asyncio.create_subprocess_exec(
                        AGENTS_RUN,
                        *command,
                        env=shared_infra_env,
                        stdout=subprocess.PIPE if command[0] == "serve" else subprocess.DEVNULL,
                        stderr=err[command[0]],
                    )
                )
            server = processes[-1]
            assert server.stdout is not None
            line = await asyncio.wait_for(server.stdout.readline(), DEADLINE)
            found = re.search(rb"http://127\.0\.0\.1:(\d+) \(without in-process worker\)", line)
            assert found, line
            port = int(found[1])
            started = await request(
                port, "POST", "/runs", json_body={"agent": "echo", "input": {"text": "x y"}}
            )
            assert started.status == 201, started
            run_id = started.json()["run_id"]
            async with open_event_stream(port, f"/runs/{run_id}/events") as stream:
                events = await stream.events_to_the_end(DEADLINE)
            assert [(f.id, f.event) for f in events] == [
                ("1", "RunStarted"),
                ("2", "RunStep"),
                ("3", "RunStep"),
                ("4", "RunFinished"),
            ]
            assert events[2].json()["data"] == {"text": "y"}
            # Each SSE data is the wire format's event (docs/schemas/run-event.schema.json).
            assert [violations(EVENT_SCHEMA, frame.json()) for frame in events] == [[]] * 4
            described = await request(port, "GET", f"/runs/{run_id}")
            assert (described.json()["status"], described.json()["last_seq"]) == ("finished", 4)
            cancelled = await request(port, "POST", f"/runs/{run_id}/cancel")
            assert cancelled.json() == {"cancel_requested": False}
        finally:
            codes = [await stop_gracefully(process) for process in processes]
    assert codes == [0, 0, 0], [path.read_text() for path in logs.values()]
