"""How events read on a terminal."""

from __future__ import annotations

import json

from agents_run.domain.events import RunEvent


def format_event(event: RunEvent) -> str:
    """``run-000001  seq   2  RunStep       {"text": "a"}``"""
    data = json.dumps(event.data, ensure_ascii=False, sort_keys=True) if event.data else ""
    return f"{event.run_id}  seq {event.seq:>3}  {event.type:<12}  {data}".rstrip()
