"""Resume by replay: the record of a run whose worker vanished, and how the next attempt's
agent is checked against it (``RunContext`` checks the journal, ``Replay`` the yields).
A difference is reported in the form of ``agents_run.domain.differences``."""

from __future__ import annotations

from collections import deque

from agents_run.domain.differences import difference_line, short
from agents_run.domain.events import EventType, RunEvent
from agents_run.domain.json_data import JsonObject

# A run whose workers keep vanishing (an agent that kills its process) is not taken forever.
MAX_RUN_ATTEMPTS = 5


class Replay:
    """The RunSteps a previous attempt recorded, matched in order against the agent's yields."""

    def __init__(self, events: list[RunEvent]) -> None:
        self._recorded = deque(event for event in events if event.type == EventType.RUN_STEP)
        self._matched = 0

    @property
    def pending(self) -> bool:
        """True while recorded steps are left: the agent's yields are compared, not appended."""
        return bool(self._recorded)

    def check_yield(self, data: JsonObject) -> str | None:
        """Consume the next recorded step; the difference where ``data`` is not it."""
        recorded = self._recorded.popleft()
        if recorded.data == data:
            self._matched += 1
            return None
        return difference_line(f"seq {recorded.seq} RunStep", recorded.data, data, prefix="data")

    @property
    def replayed(self) -> int:
        """How many recorded steps the agent's yields matched so far."""
        return self._matched

    def check_end(self, now: str = "the agent ended") -> str | None:
        """The difference where the agent ended (or did ``now``) before yielding every recorded
        step."""
        if not self._recorded:
            return None
        recorded = self._recorded[0]
        return f"seq {recorded.seq} RunStep: recorded {short(recorded.data)}, now {now}"
