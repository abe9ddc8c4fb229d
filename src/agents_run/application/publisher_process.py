"""The long-running outbox publisher: publishes what the outbox holds until told to drain."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from agents_run.application.outbox_publisher import publish_pending_outbox_events_once
from agents_run.errors import InvalidArgument

log = logging.getLogger("agents_run.publisher")

MAX_BACKOFF = 5.0


async def serve_publisher(*, draining: asyncio.Event, idle_poll: float = 0.5) -> int:
    """Publish pending outbox rows until ``draining`` is set; return how many were published.

    Polls every ``idle_poll`` seconds while the outbox is empty. Once ``draining`` is set it
    publishes what is pending one last time and returns. An error from the infrastructure is
    logged and retried with backoff instead of ending the process.
    """
    if not isinstance(idle_poll, (int, float)) or isinstance(idle_poll, bool) or idle_poll <= 0:
        raise InvalidArgument(f"idle_poll must be a positive number of seconds, got {idle_poll!r}")
    published = 0
    backoff = idle_poll
    while not draining.is_set():
        try:
            count = await publish_pending_outbox_events_once()
            published += count
            backoff = idle_poll
            if count:
                continue
        except Exception:
            log.exception("outbox publisher: publishing failed; retrying in %.1fs", backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(draining.wait(), backoff)
    return published + await publish_pending_outbox_events_once()
