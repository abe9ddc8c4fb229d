"""Replaying saved histories against the agent code now: what ``agents-run replay`` and a CI job
over ``tests/histories/*.json`` do. A change that would break runs in flight is caught with the
first difference. A replay runs on private in-memory infra: no fixture needed."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import tests.histories.agents as trip
from agents_run import (
    InvalidHistory,
    NondeterministicReplay,
    ReplayTimedOut,
    RunContext,
    UnknownAgent,
    register_agent,
    replay_history,
)
from agents_run.domain.json_data import JsonObject
from pytest_agents_run import saved_histories
from tests.histories import FAILED, FINISHED, HISTORIES, RUNNING
from tests.wire_format import HISTORY_SCHEMA, violations


# What a project's CI does over its folder of exported histories (docs/durability.md).
@pytest.mark.parametrize("history", saved_histories(HISTORIES))
async def test_a_saved_history_replays_against_the_agent_that_recorded_it(history: Path) -> None:
    report = await replay_history(history)
    assert report.complete is (history != RUNNING)


@pytest.mark.parametrize("history", saved_histories(HISTORIES))
def test_a_saved_history_matches_the_history_schema(history: Path) -> None:
    assert violations(HISTORY_SCHEMA, json.loads(history.read_text())) == []
    assert violations(HISTORY_SCHEMA, json.loads(history.read_text()) | {"version": 2})


def test_saved_histories_are_one_parameter_per_file_and_refuse_a_missing_folder(
    tmp_path: Path,
) -> None:
    assert [param.id for param in saved_histories(HISTORIES)] == [
        "trip-planner-failed",
        "trip-planner-finished",
        "trip-planner-running",
    ]
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        saved_histories(tmp_path / "missing")


async def test_the_summary_says_what_was_reproduced() -> None:
    assert (await replay_history(FINISHED)).summary() == (
        "run run-000001 (agent trip-planner) reproduced to its end: 3 RunSteps, 4 recorded "
        "calls (RunFinished at seq 5)"
    )
    assert (await replay_history(RUNNING)).summary() == (
        "run run-000001 (agent trip-planner) reproduced up to where its record stops: 1 "
        "RunStep, 2 recorded calls (the run is running, last seq 2)"
    )


def changed_trip_planner(
    *, step_name: str = "search places", tags: tuple[str, ...] = (), stop_after: int = 9
) -> None:
    """Register new code under the old agent's name: another step name, an extra tag in every
    place, or fewer yields."""

    @register_agent("trip-planner")
    async def agent(input: JsonObject, ctx: RunContext) -> AsyncIterator[JsonObject]:
        started = ctx.now()
        places = await ctx.step(step_name, trip.search_places, input["city"])
        for place in places[:stop_after]:
            shown = {**place, "tags": [*place["tags"], *tags]}
            yield {"place": shown, "at": started.isoformat()}
        await ctx.sleep(60)
        if stop_after > len(places):
            yield {"summary": await ctx.step("summarise", trip.summarise, places)}


@pytest.mark.parametrize(
    ("change", "difference"),
    [
        (
            {"tags": ("sea",)},
            'seq 2 RunStep data.place.tags[2]: recorded (missing), now "sea"',
        ),
        (
            {"step_name": "find places"},
            'journal entry 2 name: recorded "search places", now "find places"',
        ),
        (
            {"stop_after": 1},
            'seq 3 RunStep: recorded {"at": "2026-01-01T00:00:00+00:00", "pl…, now the agent ended',
        ),
    ],
    ids=["different-yield", "different-step-name", "fewer-steps"],
)
async def test_changed_agent_code_fails_with_the_first_difference(
    change: dict[str, Any], difference: str
) -> None:
    changed_trip_planner(**change)
    with pytest.raises(NondeterministicReplay) as departed:
        await replay_history(FINISHED)
    assert departed.value.difference == difference
    assert str(departed.value) == (
        f"run 'run-000001' (agent 'trip-planner'): the agent departed from the run's record at "
        f"{difference}"
    )


async def test_a_long_string_is_shown_around_its_first_difference() -> None:
    document = json.loads(FINISHED.read_text())
    # Only the yield: ctx.step returns what the journal holds, whatever fn returns now.
    document["events"][1]["data"]["place"]["name"] = "harbour" + ", at dawn, with boats" * 3
    with pytest.raises(NondeterministicReplay) as departed:
        await replay_history(document)
    assert departed.value.difference == (
        'seq 2 RunStep data.place.name, from character 8: recorded "harbour, at dawn, with '
        'boats, a"…, now "harbour"'
    )


async def test_a_new_call_before_a_recorded_step_is_a_difference() -> None:
    @register_agent("trip-planner")
    async def agent(input: JsonObject, ctx: RunContext) -> AsyncIterator[JsonObject]:
        started = ctx.now()
        places = await ctx.step("search places", trip.search_places, input["city"])
        await ctx.step("rank places", sorted, [place["name"] for place in places])
        yield {"place": places[0], "at": started.isoformat()}

    with pytest.raises(NondeterministicReplay) as departed:
        await replay_history(RUNNING)
    assert departed.value.difference == (
        'seq 2 RunStep: recorded {"at": "2026-01-01T00:00:00+00:00", "pl…, now step "rank '
        'places", past the end of the journal'
    )


async def test_new_code_may_go_on_where_a_running_runs_record_stops() -> None:
    changed_trip_planner(tags=())  # the same as the recorded code up to seq 2, then goes on
    assert (await replay_history(RUNNING)).steps == 1


async def test_a_failed_run_replays_only_if_the_agent_fails_the_same_way() -> None:
    @register_agent("trip-planner")
    async def agent(input: JsonObject, ctx: RunContext) -> AsyncIterator[JsonObject]:
        ctx.now()
        if input["city"] == "atlantis":
            raise KeyError(input["city"])  # no longer the failing step the run recorded
        yield {}

    with pytest.raises(NondeterministicReplay) as departed:
        await replay_history(FAILED)
    assert departed.value.difference == (
        'seq 2 RunFailed data.error_type: recorded "LookupError", now "KeyError"'
    )


async def test_a_history_of_an_agent_not_registered_is_unknown_agent() -> None:
    document = json.loads(FINISHED.read_text()) | {"agent": "retired-agent"}
    with pytest.raises(UnknownAgent, match="unknown agent 'retired-agent'"):
        await replay_history(document)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "is not JSON"),
        ("[]", "a run history is a JSON object, got list"),
        ('{"format": "temporal"}', "not a run history: format is 'temporal'"),
        ('{"format": "agents-run-history", "version": 2}', "version 2 is not supported"),
        ('{"format": "agents-run-history", "version": 1}', "field 'run_id' is missing"),
    ],
    ids=["not-json", "not-an-object", "other-format", "other-version", "missing-field"],
)
async def test_a_malformed_history_file_is_invalid_history(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "history.json"
    path.write_text(text)
    with pytest.raises(InvalidHistory, match=message):
        await replay_history(path)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"events": [{"seq": 2, "type": "RunStarted", "data": {}}]}, "event 1 has seq 2"),
        ({"events": [{"seq": 1, "type": "RunExploded", "data": {}}]}, "unknown event type"),
        ({"steps": [{"index": 1, "attempt": 1, "kind": "teleport"}]}, "'teleport'"),
        ({"input": []}, "input"),
    ],
    ids=["seq-gap", "unknown-event-type", "unknown-step-kind", "input-not-an-object"],
)
async def test_a_malformed_history_document_is_invalid_history(
    edit: JsonObject, message: str
) -> None:
    with pytest.raises(InvalidHistory, match=message):
        await replay_history(json.loads(FINISHED.read_text()) | edit)


async def test_an_agent_waiting_on_what_its_record_does_not_hold_times_out() -> None:
    @register_agent("trip-planner")
    async def agent(input: JsonObject, ctx: RunContext) -> AsyncIterator[JsonObject]:
        await asyncio.Event().wait()  # an await outside ctx: no record can answer it
        yield {}

    with pytest.raises(ReplayTimedOut, match="waits on something its record does not hold"):
        await replay_history(FINISHED, timeout=0.01)
