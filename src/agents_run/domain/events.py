"""Run events and the run life cycle: queued -> running -> finished | failed | cancelled."""

from __future__ import annotations

import enum
import json
import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from agents_run.arguments import require_positive_int
from agents_run.domain.json_data import (
    DEFAULT_MAX_PAYLOAD_BYTES,
    JsonObject,
    ensure_json_object,
    json_object_copy,
    json_text,
)
from agents_run.errors import InvalidTransition, StaleAttempt, StaleRunState


class EventType(enum.StrEnum):
    """The types of run events; each value is the ``type`` string stored and sent."""

    RUN_STARTED = "RunStarted"
    RUN_STEP = "RunStep"
    RUN_RESUMED = "RunResumed"  # another worker took over a run whose worker vanished
    RUN_FINISHED = "RunFinished"
    RUN_FAILED = "RunFailed"
    RUN_CANCELLED = "RunCancelled"

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL_EVENT_TYPES


_TERMINAL_EVENT_TYPES = frozenset(
    {EventType.RUN_FINISHED, EventType.RUN_FAILED, EventType.RUN_CANCELLED}
)
# Plain strings: a RunEvent's type may be given as either, and Python 3.11's ``in EventType``
# raises for a string.
_EVENT_TYPE_VALUES = frozenset(event_type.value for event_type in EventType)


class RunStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL_STATUSES


_TERMINAL_STATUSES = frozenset({RunStatus.FINISHED, RunStatus.FAILED, RunStatus.CANCELLED})


@dataclass(frozen=True)
class RunEvent:
    """One step of a run's history. ``seq`` is 1-based and gap-free per run."""

    run_id: str
    seq: int
    type: str
    data: JsonObject = field(default_factory=dict)

    def __post_init__(self) -> None:
        # A plain string, as stored and sent, whether an EventType or a str was given.
        object.__setattr__(self, "type", str(self.type))
        if self.type not in _EVENT_TYPE_VALUES:
            raise ValueError(
                f"unknown event type {self.type!r}; one of {sorted(_EVENT_TYPE_VALUES)}"
            )
        require_positive_int(self.seq, "seq")
        ensure_json_object(self.data, f"data of {self.type} event")

    @classmethod
    def checked_already(cls, run_id: str, seq: int, type: str, data: JsonObject) -> RunEvent:
        """An event whose fields were checked already (by ``next_run_event``, or as a store
        wrote them): built without checking them again, on the hot path of every append and
        every read."""
        event = object.__new__(cls)
        # A frozen dataclass without slots: its fields live in __dict__ (as its __init__ sets).
        event.__dict__.update(run_id=run_id, seq=seq, type=str(type), data=data)
        return event

    @property
    def is_terminal(self) -> bool:
        return self.type in _TERMINAL_EVENT_TYPES

    def to_json(self) -> JsonObject:
        return {"run_id": self.run_id, "seq": self.seq, "type": self.type, "data": self.data}

    def to_json_text(self) -> str:
        """The event as compact JSON text, as the bus and the HTTP event stream send it."""
        return json.dumps(self.to_json(), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json_text(cls, text: str | bytes) -> RunEvent:
        if isinstance(text, bytes) and b"\\u" not in text:
            # UTF-8 without escapes: what json parses from it is JSON (str keys, no lone
            # surrogate, no NUL) but for NaN and infinity, refused here; so no second check.
            payload = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
            run_id, seq, type_, data = (payload[key] for key in ("run_id", "seq", "type", "data"))
            if (
                type(run_id) is str
                and type(seq) is int
                and seq >= 1
                and type_ in _EVENT_TYPE_VALUES
                and type(data) is dict
            ):
                return cls.checked_already(run_id, seq, type_, data)
        return cls.from_json(json.loads(text))

    @classmethod
    def from_json(cls, payload: JsonObject) -> RunEvent:
        return cls(
            run_id=str(payload["run_id"]),
            seq=int(payload["seq"]),
            type=str(payload["type"]),
            data=dict(payload["data"]),
        )


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is out of range for JSON numbers here")
    return value


@dataclass(frozen=True)
class Run:
    """A run as the store holds it."""

    id: str
    agent: str
    input: JsonObject
    status: RunStatus
    created_at: datetime
    updated_at: datetime
    last_seq: int = 0
    cancel_requested: bool = False
    # The fencing token: how many times a worker took the run. Only the attempt holding the
    # lease may append; ``lease_until`` is when that lease runs out unless renewed.
    attempt: int = 0
    lease_until: datetime | None = None

    def lease_is_live(self, at: datetime) -> bool:
        """True while a worker's lease on this run has not run out at ``at``."""
        return self.lease_until is not None and self.lease_until > at


_NEXT_STATUS: dict[tuple[RunStatus, str], RunStatus] = {
    (RunStatus.QUEUED, EventType.RUN_STARTED): RunStatus.RUNNING,
    (RunStatus.QUEUED, EventType.RUN_CANCELLED): RunStatus.CANCELLED,
    (RunStatus.QUEUED, EventType.RUN_FAILED): RunStatus.FAILED,
    (RunStatus.RUNNING, EventType.RUN_STEP): RunStatus.RUNNING,
    (RunStatus.RUNNING, EventType.RUN_RESUMED): RunStatus.RUNNING,
    (RunStatus.RUNNING, EventType.RUN_FINISHED): RunStatus.FINISHED,
    (RunStatus.RUNNING, EventType.RUN_FAILED): RunStatus.FAILED,
    (RunStatus.RUNNING, EventType.RUN_CANCELLED): RunStatus.CANCELLED,
}


def status_after(status: RunStatus, event_type: str) -> RunStatus:
    """The run's status once an event of ``event_type`` is appended; raises where not allowed."""
    try:
        return _NEXT_STATUS[(status, event_type)]
    except KeyError:
        raise InvalidTransition(
            f"a {event_type} event cannot follow a run in status {status.value!r}"
        ) from None


class NextRunEvent(NamedTuple):
    """What an append adds to a run: its event, the run's status after it, and the event's data
    as the JSON text a store writes (serialised once, where its size was measured). A tuple: it
    is built on every append."""

    event: RunEvent
    status: RunStatus
    data_json: str


def next_run_event(
    run_id: str,
    status: RunStatus,
    last_seq: int,
    type: str,
    data: JsonObject,
    *,
    expected_status: RunStatus | None = None,
    current_attempt: int = 0,
    attempt: int | None = None,
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
    cancel_requested: bool = False,
) -> NextRunEvent:
    """The event appended to a run in ``status`` whose last event is ``last_seq``.

    Every store calls this inside its append, so no adapter can skip a seq, record a step after
    the end or a second terminal event: raises ``StaleRunState`` where ``expected_status`` is
    given and is not ``status``, and ``InvalidTransition`` where the life cycle forbids it. The
    data is copied, so a caller mutating its dict later changes nothing stored.
    Fencing: where ``attempt`` is given and is not the run's ``current_attempt`` (its lease
    lapsed and another worker took the run), raises ``StaleAttempt``, so a worker that was
    taken over can never write to the run again. Data over ``max_payload_bytes`` as JSON raises
    ``PayloadTooLarge``.
    Cancellation: where the run's ``cancel_requested`` is set, any terminal event appended is
    ``RunCancelled`` (data ``{}``), so that ``cancel_run`` returning True means the run ends
    ``RunCancelled`` whatever its agent or worker did meanwhile.
    """
    if attempt is not None and attempt != current_attempt:
        raise StaleAttempt(
            f"run {run_id!r} is held by attempt {current_attempt}, not {attempt}: its lease ran "
            "out and another worker took the run"
        )
    if expected_status is not None and status != expected_status:
        raise StaleRunState(f"run {run_id!r} is {status.value}, not {expected_status.value}")
    if cancel_requested and type in _TERMINAL_EVENT_TYPES:
        type, data = EventType.RUN_CANCELLED, {}
    new_status = status_after(status, type)
    what = f"data of {type} event"
    copied = json_object_copy(data, what)
    data_json = json_text(copied, what, max_payload_bytes)
    event = RunEvent.checked_already(run_id, last_seq + 1, type, copied)
    return NextRunEvent(event=event, status=new_status, data_json=data_json)
