"""How events read on a terminal, and URLs in errors and logs."""

from __future__ import annotations

import json
from urllib.parse import urlsplit, urlunsplit

from agents_run.domain.events import RunEvent


def format_event(event: RunEvent) -> str:
    """``run-000001  seq   2  RunStep       {"text": "a"}``"""
    data = json.dumps(event.data, ensure_ascii=False, sort_keys=True) if event.data else ""
    return f"{event.run_id}  seq {event.seq:>3}  {event.type:<12}  {data}".rstrip()


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***``, safe for errors and logs."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = (parts.username or "") + ":***"
    return urlunsplit(parts._replace(netloc=f"{user}@{netloc[-1]}"))
