"""The ports: what the application needs from infrastructure, and nothing more.

Every method is a coroutine so that one set of use cases drives both the in-memory adapters and
the networked ones. Adapters raise ``RunNotFound`` for unknown runs and ``InfraUnavailable`` where
a server does not answer within its deadline.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from agents_run.domain.events import Run, RunEvent, RunStatus
from agents_run.domain.journal import StepRecord
from agents_run.domain.json_data import JsonObject


@runtime_checkable
class Subscription(Protocol):
    """One subscriber's live feed of one run's events, in publish order."""

    async def next_event(self, timeout: float) -> RunEvent | None:
        """The next event published after the subscription started, or None after ``timeout`` s."""
        ...

    async def aclose(self) -> None:
        """Stop receiving. Idempotent."""
        ...

    def __aiter__(self) -> AsyncIterator[RunEvent]: ...


@runtime_checkable
class EventBusPort(Protocol):
    """Fan-out of published events to live subscribers. At-most-once: the store is the truth."""

    async def publish(self, event: RunEvent) -> None: ...

    async def publish_batch(self, events: Sequence[RunEvent]) -> None:
        """Publish ``events`` in order, in as few round trips as the bus can (the outbox
        publisher sends each claimed batch so). Where it raises, any first part of them may
        have gone out: the outbox publishes the batch again, and streams skip what they had."""
        ...

    async def subscribe(self, run_id: str) -> Subscription:
        """Subscribe to ``run_id``; every event published after this returns is delivered."""
        ...

    async def aclose(self) -> None: ...


# A job failed because the store or the queue failed is retried, so that a later worker ends
# its run instead of leaving it running; a networked queue spaces the retries out.
MAX_JOB_ATTEMPTS = 10


@dataclass(frozen=True)
class Job:
    """A queued request to execute one run. ``attempt`` counts takes of the same job."""

    run_id: str
    attempt: int = 1


@dataclass(frozen=True)
class QueueCounts:
    waiting: int
    active: int

    @property
    def total(self) -> int:
        return self.waiting + self.active


@runtime_checkable
class QueuePort(Protocol):
    """A job queue driven step by step: take, then complete or fail."""

    async def enqueue(self, run_id: str) -> None:
        """Queue a job for ``run_id``; enqueueing a run that already has a job does nothing."""
        ...

    async def take_next(self) -> Job | None:
        """Take the next waiting job without blocking; None where none is waiting."""
        ...

    async def complete(self, job: Job) -> None: ...

    async def fail(self, job: Job, error: str) -> None:
        """End this take of ``job`` as failed. The job is taken again later (``attempt`` + 1),
        until it has failed ``MAX_JOB_ATTEMPTS`` times; meanwhile ``counts`` shows it waiting."""
        ...

    async def counts(self) -> QueueCounts: ...

    async def recover_stalled(self) -> list[str]:
        """Queue again the jobs whose worker vanished mid-run; their run ids. Worker processes
        call this periodically; where no job can outlive its worker it finds nothing."""
        ...

    def may_have_lost_jobs(self) -> bool:
        """True once after the queue saw a sign that its server may have lost jobs (a dropped
        connection, a job gone from under its worker: a restart without persistence); the
        worker then enqueues again, at once, the queued runs with no live job. No I/O."""
        ...

    async def wait_for_job(self, timeout: float) -> bool:
        """Wait until a job may be waiting: True then (at once where one is), False after
        ``timeout`` s. A worker's wake-up call instead of a busy loop; True may be spurious."""
        ...

    async def has_live_job(self, run_id: str) -> bool:
        """True while the run's job may still be taken or is held: waiting, waiting for a retry,
        or active. False once it completed or failed ``MAX_JOB_ATTEMPTS`` times, and for a run
        the queue does not know (never enqueued, or its job was lost or removed)."""
        ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True)
class OutboxRow:
    """An appended event waiting to be published. ``id`` orders rows across runs."""

    id: int
    event: RunEvent


class OutboxClaim(Protocol):
    """Rows claimed by one publisher; other publishers skip them until the claim ends."""

    rows: Sequence[OutboxRow]

    async def mark_published(self, rows: Sequence[OutboxRow]) -> None: ...


@runtime_checkable
class RunStorePort(Protocol):
    """Runs, their events and the outbox. The single source of truth."""

    async def create_run(self, run: Run) -> None: ...

    async def get_run(self, run_id: str) -> Run:
        """The run; raises ``RunNotFound``."""
        ...

    async def append_event(
        self,
        run_id: str,
        type: str,
        data: JsonObject,
        *,
        at: datetime,
        expected_status: RunStatus | None = None,
        attempt: int | None = None,
    ) -> RunEvent:
        """Append the run's next event and its outbox row in one atomic step.

        The store allocates ``seq`` (last + 1) and moves the run's status as
        ``domain.events.status_after`` says, raising ``InvalidTransition`` where that is not
        allowed and ``StaleRunState`` where ``expected_status`` is given and is not the run's.
        Where ``attempt`` is given and is not the run's current attempt (another worker took the
        run over), it raises ``StaleAttempt`` and appends nothing: the check is made in the
        append's own transaction (``domain.events.check_attempt``).
        """
        ...

    async def acquire_lease(self, run_id: str, *, at: datetime, until: datetime) -> Run | None:
        """Take the run for a new attempt: where it has not ended and no lease on it is live at
        ``at``, increment ``attempt`` and hold the lease until ``until``; the run as taken.

        None where the run has ended or another attempt's lease is still live; raises
        ``RunNotFound``. Atomic: of two callers at once, one gets the run.
        """
        ...

    async def renew_lease(self, run_id: str, attempt: int, *, until: datetime) -> bool:
        """Extend the lease of ``attempt`` to ``until``; False where ``attempt`` is no longer
        the run's (it was taken over) or the run has ended. Leaves ``updated_at`` alone."""
        ...

    async def list_lapsed_leases(self, *, at: datetime, limit: int = 100) -> list[Run]:
        """Up to ``limit`` running runs whose lease ran out at or before ``at``, the longest
        lapsed first (ties in run id order): their worker stopped renewing."""
        ...

    async def read_events(
        self, run_id: str, from_seq: int = 1, limit: int | None = None
    ) -> list[RunEvent]:
        """Events with seq >= from_seq in seq order; raises ``RunNotFound``."""
        ...

    async def request_cancel(self, run_id: str, *, at: datetime) -> bool:
        """Flag the run for cancellation; True where this call set the flag on a live run."""
        ...

    async def wait_for_cancel(self, run_id: str, timeout: float) -> bool:
        """True once the run's cancellation is requested (at once where it already is), False
        after ``timeout`` s. A request made through any store sharing the data is seen within
        ``timeout`` s at worst (pushed where the store can, read again at the end otherwise)."""
        ...

    async def record_step(self, record: StepRecord) -> None:
        """Add ``record`` to its run's journal (never a stream event, no outbox row).

        Raises ``RunNotFound``, ``InvalidTransition`` where the run has ended, and
        ``StaleRunState`` where the journal already holds ``record.index``.
        """
        ...

    async def read_steps(self, run_id: str) -> list[StepRecord]:
        """The run's journal in index order; raises ``RunNotFound``."""
        ...

    async def list_stale_runs(self, *, updated_before: datetime, limit: int = 100) -> list[Run]:
        """Up to ``limit`` runs not yet ended (queued or running) whose ``updated_at`` is before
        ``updated_before``, oldest first (ties in run id order)."""
        ...

    async def pending_outbox(self, run_id: str | None = None) -> list[OutboxRow]:
        """Unpublished rows (of one run, or all) in outbox order, claimed or not."""
        ...

    async def count_pending_outbox(self, run_id: str | None = None) -> int:
        """How many rows ``pending_outbox`` would return, without reading them."""
        ...

    async def delete_published_outbox(self, *, published_for: float, limit: int = 1000) -> int:
        """Delete up to ``limit`` outbox rows published at least ``published_for`` seconds ago
        (by the store's own clock, which stamped them), oldest first; return how many. Pending
        rows and events are never deleted: the retention job of the publisher calls it."""
        ...

    def claim_outbox(
        self, *, run_id: str | None = None, limit: int = 500
    ) -> AbstractAsyncContextManager[OutboxClaim]:
        """Claim up to ``limit`` unpublished, unclaimed rows in outbox order.

        Rows marked published inside the claim stay published; the rest are released when the
        block ends, also when it raises, so a failed publish is retried later (at least once).
        """
        ...

    async def wait_for_outbox(self, timeout: float) -> bool:
        """Wait until new outbox rows may be pending: True then, False after ``timeout`` s.

        A publisher's wake-up call instead of a busy loop. True may be spurious (the first call
        always returns True, as the store cannot know what was appended before it); a row
        appended by any process sharing the store is never missed.
        """
        ...

    async def create_schema(self) -> None:
        """Create the tables this store needs where they are missing. Idempotent."""
        ...

    async def aclose(self) -> None: ...


class IdGenerator(Protocol):
    def new_run_id(self) -> str: ...


class Clock(Protocol):
    def now(self) -> datetime: ...

    async def sleep(self, seconds: float) -> None:
        """Let ``seconds`` pass on this clock (a manual clock moves at once)."""
        ...


__all__ = [
    "MAX_JOB_ATTEMPTS",
    "Clock",
    "EventBusPort",
    "IdGenerator",
    "Job",
    "OutboxClaim",
    "OutboxRow",
    "QueueCounts",
    "QueuePort",
    "RunStorePort",
    "Subscription",
]
