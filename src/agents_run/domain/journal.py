"""The run's journal: what an agent's context recorded, so that a later execution can replay it.

A journal entry is not a stream event: it is kept by the store beside the run's events and
numbered on its own (``index`` 1, 2, ... per run, one per recorded call, in call order), so that
a replay matches calls by position and checks their kind and name.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from agents_run.domain.events import Run, RunStatus
from agents_run.domain.json_data import ensure_json_value, json_text
from agents_run.errors import InvalidTransition, StaleAttempt, StaleRunState


class StepKind(enum.StrEnum):
    STEP = "step"  # ctx.step(name, fn): the result fn returned
    NOW = "now"  # ctx.now(): the time it returned, ISO 8601
    SLEEP = "sleep"  # ctx.sleep(seconds): {"seconds": ..., "until": ISO 8601}


@dataclass(frozen=True)
class StepRecord:
    """One recorded call of a run's context. ``attempt`` is the execution that recorded it."""

    run_id: str
    index: int
    attempt: int
    kind: StepKind
    name: str
    result: Any  # JSON

    def __post_init__(self) -> None:
        for field_name in ("index", "attempt"):
            value = getattr(self, field_name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{field_name} must be an int >= 1, got {value!r}")
        if not isinstance(self.kind, StepKind):
            raise ValueError(f"kind must be a StepKind, got {self.kind!r}")


def check_step_result(record: StepRecord) -> None:
    """Every store calls this before it writes anything of a ``record_step``: results are JSON."""
    ensure_json_value(record.result, f"the result of {record.kind.value} {record.name!r}")


def check_step_can_be_recorded(run: Run, record: StepRecord, index_taken: bool) -> None:
    """Every store calls this inside its ``record_step``: steps belong to a running run, are
    recorded by its current attempt (an attempt whose run was taken over since is fenced off,
    as its appends are), each index once."""
    if run.status is not RunStatus.RUNNING:
        raise InvalidTransition(
            f"run {run.id!r} is {run.status.value}: steps are recorded only while it runs"
        )
    if record.attempt < run.attempt:
        raise StaleAttempt(
            f"run {run.id!r} was taken over by attempt {run.attempt}: attempt "
            f"{record.attempt} can no longer record its journal"
        )
    if index_taken:
        raise StaleRunState(f"run {run.id!r} already has journal entry {record.index}")


def step_result_json(record: StepRecord, max_payload_bytes: int) -> str:
    """The record's result as the JSON text a store writes; ``PayloadTooLarge`` over the limit."""
    what = f"the result of {record.kind.value} {record.name!r}"
    return json_text(record.result, what, max_payload_bytes)
