"""A run's history as one JSON document (``agents-run export``): what a replay needs to check an
agent's code against the run, away from the store that recorded it.

Format ``agents-run-history``, version 1 (docs/schemas/run-history.schema.json)::

    {"format": "agents-run-history", "version": 1, "run_id": "...", "agent": "...",
     "input": {...}, "status": "finished", "attempt": 1,
     "events": [{"seq": 1, "type": "RunStarted", "data": {...}}, ...],
     "steps": [{"index": 1, "attempt": 1, "kind": "step", "name": "...", "result": ...}, ...]}

``events`` are the run's events in seq order, ``steps`` its journal (what ``ctx.step``,
``ctx.now`` and ``ctx.sleep`` recorded) in index order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agents_run.domain.events import EventType, Run, RunEvent, RunStatus
from agents_run.domain.failures import FailureType
from agents_run.domain.journal import StepKind, StepRecord
from agents_run.domain.json_data import JsonObject, ensure_json_object, ensure_json_value
from agents_run.errors import AgentsRunError, InvalidHistory

HISTORY_FORMAT = "agents-run-history"
HISTORY_VERSION = 1
_PROJECT_FAILURES = frozenset(failure.value for failure in FailureType)


@dataclass(frozen=True)
class RunHistory:
    """One run's record: its input, events and journal."""

    run_id: str
    agent: str
    input: JsonObject
    status: RunStatus
    attempt: int
    events: tuple[RunEvent, ...]
    steps: tuple[StepRecord, ...]

    @classmethod
    def of(cls, run: Run, events: list[RunEvent], steps: list[StepRecord]) -> RunHistory:
        return cls(run.id, run.agent, run.input, run.status, run.attempt, (*events,), (*steps,))

    @property
    def terminal(self) -> RunEvent | None:
        last = self.events[-1] if self.events else None
        return last if last is not None and last.is_terminal else None

    @property
    def complete(self) -> bool:
        """True where the agent itself ended the run (``RunFinished``, or ``RunFailed`` for its
        own error): a replay must then end the same way. Otherwise (running, cancelled, or ended
        by the worker) the record stops somewhere in the middle of the agent."""
        terminal = self.terminal
        if terminal is None:
            return False
        if terminal.type == EventType.RUN_FINISHED:
            return True
        return (
            terminal.type == EventType.RUN_FAILED
            and terminal.data.get("error_type") not in _PROJECT_FAILURES
        )

    def to_json(self) -> JsonObject:
        return {
            "format": HISTORY_FORMAT,
            "version": HISTORY_VERSION,
            "run_id": self.run_id,
            "agent": self.agent,
            "input": self.input,
            "status": self.status.value,
            "attempt": self.attempt,
            "events": [
                {"seq": event.seq, "type": event.type, "data": event.data} for event in self.events
            ],
            "steps": [
                {
                    "index": step.index,
                    "attempt": step.attempt,
                    "kind": step.kind.value,
                    "name": step.name,
                    "result": step.result,
                }
                for step in self.steps
            ],
        }

    @classmethod
    def from_json(cls, document: object) -> RunHistory:
        """Read what ``to_json`` wrote; raises ``InvalidHistory`` saying what is wrong."""
        if not isinstance(document, dict):
            raise InvalidHistory(f"a run history is a JSON object, got {type(document).__name__}")
        if document.get("format") != HISTORY_FORMAT:
            raise InvalidHistory(
                f"not a run history: format is {document.get('format')!r}, expected "
                f"{HISTORY_FORMAT!r} (write one with agents-run export RUN_ID)"
            )
        if document.get("version") != HISTORY_VERSION:
            raise InvalidHistory(
                f"run history version {document.get('version')!r} is not supported: this "
                f"agents-run reads version {HISTORY_VERSION}"
            )
        try:
            return _parse(document)
        except (AgentsRunError, KeyError, TypeError, ValueError) as error:
            if isinstance(error, InvalidHistory):
                raise
            missing = f"field {error} is missing" if isinstance(error, KeyError) else str(error)
            raise InvalidHistory(f"malformed run history: {missing}") from None


def _parse(document: dict[str, Any]) -> RunHistory:
    run_id, agent = _text(document, "run_id"), _text(document, "agent")
    events = tuple(
        RunEvent(run_id, _int(item, "seq"), _text(item, "type"), _object(item, "data"))
        for item in _list(document, "events")
    )
    for expected, event in enumerate(events, start=1):
        if event.seq != expected:
            raise InvalidHistory(
                f"malformed run history: event {expected} has seq {event.seq}; events run "
                "from seq 1 without gaps"
            )
    steps = tuple(
        StepRecord(
            run_id=run_id,
            index=_int(item, "index"),
            attempt=_int(item, "attempt"),
            kind=StepKind(_text(item, "kind")),
            name=_text(item, "name"),
            result=ensure_json_value(item["result"], "a step's result"),
        )
        for item in _list(document, "steps")
    )
    if [step.index for step in steps] != list(range(1, len(steps) + 1)):
        raise InvalidHistory("malformed run history: steps are numbered 1, 2, ... in order")
    return RunHistory(
        run_id=run_id,
        agent=agent,
        input=_object(document, "input"),
        status=RunStatus(_text(document, "status")),
        attempt=_int(document, "attempt", minimum=0),
        events=events,
        steps=steps,
    )


def _text(item: object, key: str) -> str:
    value = _field(item, key)
    if not isinstance(value, str) or not value:
        raise InvalidHistory(f"malformed run history: {key} must be a non-empty string")
    return value


def _int(item: object, key: str, minimum: int = 1) -> int:
    value = _field(item, key)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidHistory(f"malformed run history: {key} must be an integer >= {minimum}")
    return value


def _object(item: object, key: str) -> JsonObject:
    return ensure_json_object(_field(item, key), key)


def _list(item: object, key: str) -> list[Any]:
    value = _field(item, key)
    if not isinstance(value, list):
        raise InvalidHistory(f"malformed run history: {key} must be a list")
    return value


def _field(item: object, key: str) -> Any:
    if not isinstance(item, dict):
        raise InvalidHistory(f"malformed run history: expected an object holding {key!r}")
    if key not in item:
        raise InvalidHistory(f"malformed run history: field {key!r} is missing")
    return item[key]
