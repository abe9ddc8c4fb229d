"""Why a run failed: the ``error_type`` and ``message`` of every ``RunFailed`` event."""

from __future__ import annotations

import enum
import traceback
from pathlib import Path

from agents_run.domain.json_data import JsonObject

MAX_FRAMES = 10
MAX_MESSAGE = 2000
_OWN_CODE = str(Path(__file__).resolve().parent.parent) + "/"  # the agents_run package


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
    """The data of a ``RunFailed`` event for an agent that raised ``error``, with ``where`` it
    was raised: the innermost ``MAX_FRAMES`` frames outside agents-run as ``"file.py:line in
    function"`` (names and numbers only: no locals, no arguments, no source read)."""
    message = str(error)
    if len(message) > MAX_MESSAGE:
        message = message[:MAX_MESSAGE] + "... (cut)"
    return {**failure_data(type(error).__name__, message), "where": where(error)}


def where(error: BaseException) -> list[str]:
    frames = [
        (frame.f_code, line)
        for frame, line in traceback.walk_tb(error.__traceback__)
        if not frame.f_code.co_filename.startswith(_OWN_CODE)
    ]
    return [f"{Path(code.co_filename).name}:{line} in {code.co_name}" for code, line in frames][
        -MAX_FRAMES:
    ]
