"""The outbox publisher: pushes appended events to the bus, marking each row once published."""

from __future__ import annotations

import asyncio

from agents_run.application.infra import get_infra
from agents_run.ports import OutboxRow

BATCH_SIZE = 500


async def publish_pending_outbox_events_once(*, stop: asyncio.Event | None = None) -> int:
    """Publish the rows the outbox holds now, in outbox order; return how many were published.

    Where ``stop`` is set (a publisher shutting down), returns after the batch in hand.
    """
    return await _publish(run_id=None, stop=stop)


async def drain_outbox_for_run(run_id: str) -> int:
    """Publish ``run_id``'s pending rows, in seq order; return how many were published.

    Raises ``RunNotFound`` for an unknown run rather than silently publishing nothing.
    """
    await get_infra().store.get_run(run_id)
    return await _publish(run_id=run_id, stop=None)


async def _publish(run_id: str | None, stop: asyncio.Event | None) -> int:
    infra = get_infra()
    # Bound the work to what is pending now, so that a busy writer cannot keep this call going.
    budget = await infra.store.count_pending_outbox(run_id)
    published = 0
    while published < budget and not (stop is not None and stop.is_set()):
        async with infra.store.claim_outbox(
            run_id=run_id, limit=min(BATCH_SIZE, budget - published)
        ) as claim:
            if not claim.rows:
                break  # the rest is claimed by another publisher
            done: list[OutboxRow] = []
            marked = 0
            try:
                for row in claim.rows:
                    await infra.bus.publish(row.event)
                    done.append(row)
                    # Marks after rows 1, 3, 7, 15...: a publisher killed mid-batch (no finally
                    # runs) still leaves half of what it published marked, so repeated kills
                    # make progress, for about log2(BATCH_SIZE) marks per batch.
                    if len(done) >= 2 * marked + 1 and len(done) < len(claim.rows):
                        await claim.mark_published(done[marked:])
                        marked = len(done)
            finally:
                # Where a publish failed, what went out is still marked.
                if len(done) > marked:
                    await claim.mark_published(done[marked:])
            published += len(done)
    return published
