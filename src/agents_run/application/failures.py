"""What ``RunFailed`` says about an agent's error: its type, its message, and where it was
raised (file:line of the frames: no locals, no arguments, nothing else of the program's state)."""

from __future__ import annotations

import logging
import traceback
from pathlib import Path

from agents_run.domain.json_data import JsonObject

log = logging.getLogger("agents_run.worker")

MAX_FRAMES = 10
MAX_MESSAGE = 2000
_OWN_CODE = str(Path(__file__).resolve().parent.parent)  # the agents_run package


def failure_data(error: BaseException) -> JsonObject:
    """``{"error_type", "message", "where"}``: ``where`` lists the innermost ``MAX_FRAMES``
    frames outside agents-run itself as ``"file.py:line in function"``."""
    message = str(error)
    if len(message) > MAX_MESSAGE:
        message = message[:MAX_MESSAGE] + "... (cut)"
    return {"error_type": type(error).__name__, "message": message, "where": where(error)}


def where(error: BaseException) -> list[str]:
    frames = [
        frame
        for frame in traceback.extract_tb(error.__traceback__)
        if not str(Path(frame.filename).resolve()).startswith(_OWN_CODE)
    ]
    return [
        f"{Path(frame.filename).name}:{frame.lineno} in {frame.name}"
        for frame in frames[-MAX_FRAMES:]
    ]


def log_infra_error(what: str, error: BaseException) -> None:
    """One line per retry with the cause; the traceback at DEBUG (an outage repeats it)."""
    log.warning("%s (%s: %s)", what, type(error).__name__, " ".join(str(error).split()))
    log.debug("the traceback of: %s", what, exc_info=error)
