from __future__ import annotations

import asyncio

from agents_run.application.infra import get_infra
from agents_run.application.outbox_publisher import publish_pending_outbox_events_once
from agents_run.application.run_worker import run_worker_once
from agents_run.arguments import require_positive_int, require_seconds
from agents_run.errors import DrainDidNotSettle

DEFAULT_MAX_STEPS_PER_RUN = 100_000
DEFAULT_TIMEOUT = 60.0


async def run_until_idle(
    max_steps: int = 10_000,
    *,
    max_steps_per_run: int = DEFAULT_MAX_STEPS_PER_RUN,
    timeout: float = DEFAULT_TIMEOUT,
) -> int:
    """Alternate worker and publisher until no job is waiting and no outbox row is pending.

    Returns the number of steps taken (a step runs at most one job, then publishes the outbox).
    Each step first asks the queue to recover jobs whose worker is gone. Errors from the worker
    or the stores propagate. Raises ``DrainDidNotSettle``, naming what was left, instead of
    running forever: where ``max_steps`` steps leave work, where one run's agent yields more
    than ``max_steps_per_run`` steps, or where it all takes longer than ``timeout`` seconds.
    """
    require_positive_int(max_steps, "max_steps")
    require_positive_int(max_steps_per_run, "max_steps_per_run")
    require_seconds(timeout, "timeout", positive=True)
    try:
        async with asyncio.timeout(timeout):
            steps = await _drain(max_steps, max_steps_per_run)
    except TimeoutError:
        raise DrainDidNotSettle(
            await _what_is_left(f"run_until_idle took longer than timeout={timeout:g}s")
            + "; an agent waiting for something that never comes, or raise timeout"
        ) from None
    if steps is None:
        raise DrainDidNotSettle(
            await _what_is_left(f"run_until_idle stopped after max_steps={max_steps}")
            + "; an agent that enqueues runs forever, or raise max_steps"
        )
    return steps


async def _drain(max_steps: int, max_steps_per_run: int) -> int | None:
    """The steps taken until idle, or None where ``max_steps`` steps did not get there."""
    infra = get_infra()
    for steps in range(max_steps):
        await infra.queue.recover_stalled()
        worked = await run_worker_once(max_steps=max_steps_per_run)
        published = await publish_pending_outbox_events_once()
        if not worked and not published:
            return steps
    counts = await infra.queue.counts()
    if counts.waiting == 0 and not await infra.store.count_pending_outbox():
        return max_steps
    return None


async def _what_is_left(stopped: str) -> str:
    infra = get_infra()
    counts = await infra.queue.counts()
    pending = await infra.store.count_pending_outbox()
    return (
        f"{stopped} with work left: {counts.waiting} job(s) waiting, {counts.active} active, "
        f"{pending} outbox row(s) unpublished"
    )
