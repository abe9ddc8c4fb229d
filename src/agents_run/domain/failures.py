"""Why a run failed: the ``error_type`` and ``message`` of every ``RunFailed`` event."""

from __future__ import annotations

import enum

from agents_run.domain.json_data import JsonObject


class FailureType(enum.StrEnum):
    """The project's own failure types; an agent's failure carries its exception's class name."""

    WORKER_ERROR = "WorkerError"
    WORKER_LOST = "WorkerLost"
    WORKER_SHUTDOWN = "WorkerShutdown"
    ENQUEUE_FAILED = "EnqueueFailed"
    ORPHANED = "Orphaned"


def failure_data(error_type: str, message: str) -> JsonObject:
    """The data of a ``RunFailed`` event."""
    # Plain strings: the data is JSON and must read the same in every trace and store.
    return {"error_type": str(error_type), "message": str(message)}


def failure_of(error: BaseException) -> JsonObject:
    """The data of a ``RunFailed`` event for an agent that raised ``error``."""
    return failure_data(type(error).__name__, str(error))
