"""The outbox publisher: pushes appended events to the bus, marking each row once published."""

from __future__ import annotations

import asyncio

from agents_run.application.infra import get_infra

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


async def delete_published_outbox_rows(*, batch: int = 1000, most: int = 100_000) -> int:
    """The retention job: delete the outbox rows published longer than the infra's
    ``outbox_retention_seconds`` ago (published rows are never read again; the events stay),
    ``batch`` rows a statement, at most ``most`` in one call; return how many."""
    infra = get_infra()
    deleted = 0
    while deleted < most:
        count = await infra.store.delete_published_outbox(
            published_for=infra.outbox_retention_seconds, limit=min(batch, most - deleted)
        )
        deleted += count
        if count < batch:
            break
    return deleted


async def _publish(run_id: str | None, stop: asyncio.Event | None) -> int:
    infra = get_infra()
    # Bound the work to what is pending now, so that a busy writer cannot keep this call going.
    budget = await infra.store.count_pending_outbox(run_id)
    published = 0
    # Claims of 1, 2, 4, 8... rows (up to BATCH_SIZE), each published, marked and ended (on
    # PostgreSQL: committed) before the next: a publisher killed between publishing and marking,
    # again and again, still leaves every claim before the one in hand marked, so each restart
    # starts past at least half of what the last one published and the outbox drains. (The
    # marks of one claim commit together: a kill mid-claim loses them all.) Where publishing
    # raises, that claim is not marked and its rows go out again (streams skip seqs seen).
    size = 1
    while published < budget and not (stop is not None and stop.is_set()):
        async with infra.store.claim_outbox(
            run_id=run_id, limit=min(size, budget - published)
        ) as claim:
            if not claim.rows:
                break  # the rest is claimed by another publisher
            await infra.bus.publish_batch([row.event for row in claim.rows])
            await claim.mark_published(claim.rows)
            published += len(claim.rows)
        size = min(size * 2, BATCH_SIZE)
    return published
