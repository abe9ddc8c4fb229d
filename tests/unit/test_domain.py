from __future__ import annotations

import enum
import json
import math
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import pytest

from agents_run import EventType, FailureType, InvalidArgument, RunEvent, RunStatus
from agents_run.domain.events import NextRunEvent, next_run_event, status_after
from agents_run.domain.failures import failure_data, failure_of
from agents_run.domain.json_data import ensure_json_object, json_object_copy
from agents_run.errors import InvalidTransition, PayloadTooLarge, StaleRunState


class Color(enum.StrEnum):
    RED = "red"


def test_run_event_round_trips_through_json() -> None:
    event = RunEvent(run_id="run-1", seq=2, type="RunStep", data={"text": "hi", "n": [1, None]})
    assert RunEvent.from_json(event.to_json()) == event


@pytest.mark.parametrize("seq", [0, -1, True, 1.0, "1"])
def test_run_event_rejects_a_seq_that_is_not_a_positive_int(seq: object) -> None:
    with pytest.raises(ValueError, match="seq must be an int >= 1"):
        RunEvent(run_id="run-1", seq=seq, type="RunStep")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text",
    [
        b'{"run_id":"r","seq":1,"type":"RunStep","data":{"x":NaN}}',
        b'{"run_id":"r","seq":1,"type":"RunStep","data":{"x":-Infinity}}',
        b'{"run_id":"r","seq":1,"type":"RunStep","data":{"x":1e999}}',
        b'{"run_id":"r","seq":1,"type":"RunStep","data":{"x":"\\u0000"}}',
        b'{"run_id":"r","seq":1,"type":"RunStep","data":{"x":"\\ud800"}}',
        b'{"run_id":"r","seq":1,"type":"Nope","data":{}}',
    ],
)
def test_run_event_text_that_is_not_an_event_of_json_data_is_refused(text: bytes) -> None:
    # The bus's subscribers decode every message with it (checked once, in one pass).
    with pytest.raises((ValueError, TypeError)):
        RunEvent.from_json_text(text)


def test_run_event_rejects_an_unknown_type() -> None:
    with pytest.raises(ValueError, match="unknown event type 'Step'"):
        RunEvent(run_id="run-1", seq=1, type="Step")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([1], "must be a JSON object"),
        ({"a": (1, 2)}, r"\['a'\] is a tuple"),
        ({"a": {1: "x"}}, "keys must be strings"),
        ({"a": math.nan}, "no NaN"),
        ({"a": [b"x"]}, r"\['a'\]\[0\] is a bytes"),
        ({"when": object()}, "is a object"),
        ({"text": "a\x00b"}, r"\['text'\] contains the NUL character"),
        ({"a\x00": 1}, "a key of input contains the NUL character"),
        ({"text": "\ud800"}, "is not valid Unicode text"),
    ],
)
@pytest.mark.parametrize("check", [ensure_json_object, json_object_copy])
def test_non_json_data_is_rejected_with_the_path_to_the_bad_value(
    value: object, message: str, check: Callable[[object, str], object]
) -> None:
    with pytest.raises(InvalidArgument, match=message):
        check(value, "input")


def test_a_json_copy_shares_nothing_mutable_with_the_original() -> None:
    value: dict[str, Any] = {"s": "é", "i": 1, "f": 1.5, "b": True, "n": None, "l": [{"k": ["x"]}]}
    copied = json_object_copy(value, "input")
    assert copied == value
    value["l"][0]["k"].append("changed later")
    value["s"] = "changed later"
    assert copied == {"s": "é", "i": 1, "f": 1.5, "b": True, "n": None, "l": [{"k": ["x"]}]}


def test_a_json_copy_keeps_subclasses_of_the_json_types_as_they_are() -> None:
    value = {"ordered": OrderedDict(a=1), "flag": Color.RED}
    copied = json_object_copy(value, "input")
    assert copied == value
    assert type(copied["ordered"]) is OrderedDict
    assert copied["ordered"] is not value["ordered"]


def test_json_data_is_accepted_unchanged() -> None:
    value = {"s": "x", "i": 1, "f": 1.5, "b": True, "n": None, "l": [{"k": []}]}
    assert ensure_json_object(value, "input") is value


def test_life_cycle_allows_the_documented_transitions() -> None:
    assert status_after(RunStatus.QUEUED, "RunStarted") is RunStatus.RUNNING
    assert status_after(RunStatus.QUEUED, "RunCancelled") is RunStatus.CANCELLED
    assert status_after(RunStatus.RUNNING, "RunStep") is RunStatus.RUNNING
    assert status_after(RunStatus.RUNNING, "RunFinished") is RunStatus.FINISHED
    assert status_after(RunStatus.RUNNING, "RunFailed") is RunStatus.FAILED
    assert status_after(RunStatus.RUNNING, "RunCancelled") is RunStatus.CANCELLED


@pytest.mark.parametrize("terminal", [RunStatus.FINISHED, RunStatus.FAILED, RunStatus.CANCELLED])
@pytest.mark.parametrize("event_type", ["RunStarted", "RunStep", "RunFinished", "RunCancelled"])
def test_nothing_follows_a_terminal_event(terminal: RunStatus, event_type: str) -> None:
    with pytest.raises(InvalidTransition, match=f"cannot follow a run in status '{terminal}'"):
        status_after(terminal, event_type)


def test_a_step_cannot_come_before_the_run_started() -> None:
    with pytest.raises(InvalidTransition):
        status_after(RunStatus.QUEUED, "RunStep")


def test_data_nested_beyond_the_interpreters_limits_is_refused() -> None:
    deep: dict[str, object] = {}
    for _ in range(100_000):
        deep = {"a": deep}
    with pytest.raises(InvalidArgument, match="nested too deeply"):
        ensure_json_object(deep, "input")


def test_event_and_failure_types_are_the_strings_stored_and_sent() -> None:
    assert [str(t) for t in EventType] == [
        "RunStarted",
        "RunStep",
        "RunResumed",
        "RunFinished",
        "RunFailed",
        "RunCancelled",
    ]
    assert [t for t in EventType if t.is_terminal] == ["RunFinished", "RunFailed", "RunCancelled"]
    assert {str(t) for t in FailureType} == {
        "WorkerError",
        "WorkerLost",
        "WorkerShutdown",
        "EnqueueFailed",
        "Orphaned",
        "NondeterministicReplay",
        "TooManyAttempts",
    }
    event = RunEvent(run_id="run-1", seq=1, type=EventType.RUN_STARTED)
    assert event.to_json()["type"] == "RunStarted"
    assert json.dumps(event.to_json()["type"]) == '"RunStarted"'


def test_failure_data_is_plain_json_with_the_error_type_and_message() -> None:
    data = failure_data(FailureType.WORKER_LOST, "gone")
    assert data == {"error_type": "WorkerLost", "message": "gone"}
    assert type(data["error_type"]) is str
    assert failure_of(KeyError("x")) == {"error_type": "KeyError", "message": "'x'", "where": []}


def test_the_next_event_of_a_run_takes_the_next_seq_and_moves_the_status() -> None:
    data = {"text": "a"}
    appended = next_run_event("run-1", RunStatus.RUNNING, 4, "RunStep", data)
    assert appended == NextRunEvent(
        event=RunEvent(run_id="run-1", seq=5, type="RunStep", data={"text": "a"}),
        status=RunStatus.RUNNING,
        data_json='{"text":"a"}',
    )
    data["text"] = "changed later"
    assert appended.event.data == {"text": "a"}


def test_event_data_over_the_payload_limit_is_refused_with_its_size() -> None:
    data = {"text": "é" * 10_000}  # 10,000 characters, 20,000 bytes of UTF-8
    with pytest.raises(PayloadTooLarge, match="data of RunStep event is 20011 bytes as JSON"):
        next_run_event("run-1", RunStatus.RUNNING, 1, "RunStep", data, max_payload_bytes=20_000)
    appended = next_run_event("run-1", RunStatus.RUNNING, 1, "RunStep", data)
    assert len(appended.data_json.encode()) == 20_011


def test_the_next_event_of_a_run_checks_the_expected_status_then_the_life_cycle() -> None:
    with pytest.raises(StaleRunState, match="run 'run-1' is running, not queued"):
        next_run_event(
            "run-1", RunStatus.RUNNING, 1, "RunCancelled", {}, expected_status=RunStatus.QUEUED
        )
    with pytest.raises(InvalidTransition, match="cannot follow a run in status 'finished'"):
        next_run_event("run-1", RunStatus.FINISHED, 3, "RunStep", {})
