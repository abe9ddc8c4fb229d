"""Histories as stores hold them: the sample files are what the agent records on each store, and
replaying a stored run changes nothing in the store, the outbox or the queue. (The replays
themselves, on private in-memory infra, are tested in tests/unit/test_replay_history.py.)"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

import tests.histories.agents  # noqa: F401 - registers trip-planner
from agents_run import Infra, RunHistory, replay_history, run_until_idle, start_run
from agents_run.application.replay_history import read_history
from agents_run.domain.json_data import JsonObject
from tests.histories import FAILED, FINISHED, RUNNING

pytestmark = pytest.mark.deterministic

UPDATE = os.environ.get("AGENTS_RUN_UPDATE_HISTORIES") == "1"


async def recorded(city: str) -> RunHistory:
    run_id = await start_run("trip-planner", {"city": city})
    await run_until_idle()
    return await read_history(run_id)


def in_flight(history: RunHistory, *, events: int, steps: int) -> RunHistory:
    """What the store held of ``history`` while its run was running."""
    document = history.to_json()
    document.update(status="running", events=document["events"][:events])
    document["steps"] = document["steps"][:steps]
    return RunHistory.from_json(document)


def saved(path: Path, history: RunHistory) -> JsonObject:
    document = history.to_json()
    if UPDATE:
        path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    return document


async def snapshot(infra: Infra, run_id: str) -> tuple[Any, ...]:
    """All that a replay could change: the run, its events and journal, outbox and queue."""
    store = infra.store
    return (
        await store.get_run(run_id),
        await store.read_events(run_id),
        await store.read_steps(run_id),
        await store.count_pending_outbox(),
        await infra.queue.counts(),
    )


# One test, not two: in services mode each test pays for a namespace of its own.
async def test_stored_runs_are_the_sample_histories_and_replaying_one_writes_nothing(
    infra: Infra,
) -> None:
    finished = await recorded("lisbon")
    failed = await recorded("atlantis")
    running = in_flight(finished, events=2, steps=2)
    for path, history in ((FINISHED, finished), (FAILED, failed), (RUNNING, running)):
        assert saved(path, history) == json.loads(path.read_text()), (
            f"{path.name} differs from what tests/histories/agents.py records now; rewrite the "
            "samples with AGENTS_RUN_UPDATE_HISTORIES=1"
        )
    before = await snapshot(infra, finished.run_id)
    assert (await replay_history(await read_history(finished.run_id))).complete
    assert await snapshot(infra, finished.run_id) == before
