"""Run events and the run life cycle: queued -> running -> finished | failed | cancelled."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

from agents_run.domain.json_data import JsonObject, ensure_json_object
from agents_run.errors import InvalidTransition, StaleAttempt

RUN_STARTED = "RunStarted"
RUN_STEP = "RunStep"
RUN_FINISHED = "RunFinished"
RUN_FAILED = "RunFailed"
RUN_CANCELLED = "RunCancelled"

EVENT_TYPES = frozenset({RUN_STARTED, RUN_STEP, RUN_FINISHED, RUN_FAILED, RUN_CANCELLED})
TERMINAL_EVENT_TYPES = frozenset({RUN_FINISHED, RUN_FAILED, RUN_CANCELLED})


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
        if self.type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {self.type!r}; one of {sorted(EVENT_TYPES)}")
        if isinstance(self.seq, bool) or not isinstance(self.seq, int) or self.seq < 1:
            raise ValueError(f"seq must be an int >= 1, got {self.seq!r}")
        ensure_json_object(self.data, f"data of {self.type} event")

    @property
    def is_terminal(self) -> bool:
        return self.type in TERMINAL_EVENT_TYPES

    def to_json(self) -> JsonObject:
        return {"run_id": self.run_id, "seq": self.seq, "type": self.type, "data": self.data}

    @classmethod
    def from_json(cls, payload: JsonObject) -> RunEvent:
        return cls(
            run_id=str(payload["run_id"]),
            seq=int(payload["seq"]),
            type=str(payload["type"]),
            data=dict(payload["data"]),
        )


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
    (RunStatus.QUEUED, RUN_STARTED): RunStatus.RUNNING,
    (RunStatus.QUEUED, RUN_CANCELLED): RunStatus.CANCELLED,
    (RunStatus.QUEUED, RUN_FAILED): RunStatus.FAILED,
    (RunStatus.RUNNING, RUN_STEP): RunStatus.RUNNING,
    (RunStatus.RUNNING, RUN_FINISHED): RunStatus.FINISHED,
    (RunStatus.RUNNING, RUN_FAILED): RunStatus.FAILED,
    (RunStatus.RUNNING, RUN_CANCELLED): RunStatus.CANCELLED,
}


def check_attempt(run_id: str, current: int, attempt: int | None) -> None:
    """Fencing: an append that names an attempt is refused unless it is the run's current one.

    Every store calls this inside its append, before ``status_after``, so a worker whose lease
    was taken over can never write to the run again.
    """
    if attempt is not None and attempt != current:
        raise StaleAttempt(
            f"run {run_id!r} is held by attempt {current}, not {attempt}: its lease ran out "
            "and another worker took the run"
        )


def status_after(status: RunStatus, event_type: str) -> RunStatus:
    """The run's status once an event of ``event_type`` is appended; raises where not allowed.

    Every store calls this inside its append, so no adapter can record a step after the end or a
    second terminal event.
    """
    try:
        return _NEXT_STATUS[(status, event_type)]
    except KeyError:
        raise InvalidTransition(
            f"a {event_type} event cannot follow a run in status {status.value!r}"
        ) from None
