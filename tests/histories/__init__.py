"""Sample run histories (``agents-run export`` files) and the agent that recorded them."""

from pathlib import Path

HISTORIES = Path(__file__).parent
FINISHED, FAILED, RUNNING = (
    HISTORIES / f"trip-planner-{name}.json" for name in ("finished", "failed", "running")
)
