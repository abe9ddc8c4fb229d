from __future__ import annotations

from agents_run.application.infra import get_infra
from agents_run.application.outbox_publisher import publish_pending_outbox_events_once
from agents_run.application.run_worker import run_worker_once
from agents_run.errors import DrainDidNotSettle, InvalidArgument


async def run_until_idle(max_steps: int = 10_000) -> int:
    """Alternate worker and publisher until no job is waiting and no outbox row is pending.

    Returns the number of steps taken (a step runs at most one job, then publishes the outbox).
    Each pass first asks the queue to recover jobs whose worker is gone. Errors from the worker
    or the stores propagate. Where ``max_steps`` passes leave work, or one run's agent yields
    more than ``max_steps`` steps, raises ``DrainDidNotSettle`` naming what was left instead of
    running forever.
    """
    if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
        raise InvalidArgument(f"max_steps must be an int >= 1, got {max_steps!r}")
    infra = get_infra()
    steps = 0
    while steps < max_steps:
        await infra.queue.recover_stalled()
        worked = await run_worker_once(max_steps=max_steps)
        published = await publish_pending_outbox_events_once()
        if not worked and not published:
            return steps
        steps += 1
    counts = await infra.queue.counts()
    pending = await infra.store.count_pending_outbox()
    if counts.waiting == 0 and not pending:
        return steps
    raise DrainDidNotSettle(
        f"run_until_idle stopped after max_steps={max_steps} with work left: "
        f"{counts.waiting} job(s) waiting, {counts.active} active, {pending} outbox row(s) "
        "unpublished; an agent that enqueues runs forever, or raise max_steps"
    )
