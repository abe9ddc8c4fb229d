"""Resume by replay: the record of a run whose worker vanished, and how the next attempt's
agent is checked against it (``RunContext`` checks the journal, ``Replay`` the yields)."""

from __future__ import annotations

import json
from collections import deque
from typing import Any

from agents_run.domain.events import EventType, RunEvent
from agents_run.domain.json_data import JsonObject

# A run whose workers keep vanishing (an agent that kills its process) is not taken forever.
MAX_RUN_ATTEMPTS = 5
_SHOWN = 120  # characters of a value shown in a divergence report


def shown(value: Any) -> str:
    """``value`` as short JSON, for a report of the first difference."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


class Replay:
    """The RunSteps a previous attempt recorded, matched in order against the agent's yields."""

    def __init__(self, events: list[RunEvent]) -> None:
        self._recorded = deque(event for event in events if event.type == EventType.RUN_STEP)

    @property
    def pending(self) -> bool:
        """True while recorded steps are left: the agent's yields are compared, not appended."""
        return bool(self._recorded)

    def check_yield(self, data: JsonObject) -> str | None:
        """Consume the next recorded step; the difference where ``data`` is not it."""
        recorded = self._recorded.popleft()
        if recorded.data == data:
            return None
        return f"seq {recorded.seq}: recorded RunStep {shown(recorded.data)}, now {shown(data)}"

    def check_end(self) -> str | None:
        """The difference where the agent ended before yielding every recorded step."""
        if not self._recorded:
            return None
        recorded = self._recorded[0]
        return f"seq {recorded.seq}: recorded RunStep {shown(recorded.data)}, now the agent ended"
