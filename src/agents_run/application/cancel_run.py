from __future__ import annotations

from contextlib import suppress

from agents_run.application.infra import get_infra
from agents_run.domain.events import EventType, RunStatus
from agents_run.errors import StaleRunState


async def cancel_run(run_id: str) -> bool:
    """Request cancellation; True where this call requested it, False where it was already
    requested or the run has ended. Raises ``RunNotFound`` for an unknown run.

    True means the run will end ``RunCancelled``. A queued run is cancelled at once (its agent
    never runs); a running run's agent is interrupted at its next await (the store pushes the
    flag to the worker, which also reads it every second) and the worker records
    ``RunCancelled``. An agent that returns or raises before the interruption reaches it ends
    ``RunCancelled`` too: the store appends any terminal event of a run whose cancellation was
    requested as ``RunCancelled``, in the append's own transaction.
    """
    infra = get_infra()
    if not await infra.store.request_cancel(run_id, at=infra.clock.now()):
        return False
    # Where a worker started the run meanwhile, it sees the flag at its next step boundary.
    with suppress(StaleRunState):
        await infra.store.append_event(
            run_id,
            EventType.RUN_CANCELLED,
            {},
            at=infra.clock.now(),
            expected_status=RunStatus.QUEUED,
        )
    return True
