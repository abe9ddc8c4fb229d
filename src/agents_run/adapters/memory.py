"""Deterministic in-memory adapters: no timers, no background tasks, no threads.

With ``SequentialIds`` and ``ManualClock`` (agents_run.ids_and_time), the same test does the
same thing every time it runs.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
from collections import deque
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime

from agents_run.domain.events import Run, RunEvent, RunStatus, next_run_event
from agents_run.domain.journal import (
    StepRecord,
    check_step_can_be_recorded,
    check_step_result,
    step_result_json,
)
from agents_run.domain.json_data import (
    DEFAULT_MAX_PAYLOAD_BYTES,
    JsonObject,
    check_payload_limit,
    json_object_copy,
    json_text,
)
from agents_run.errors import InvalidArgument, RunNotFound
from agents_run.ports import MAX_JOB_ATTEMPTS, Job, OutboxRow, QueueCounts


class InMemorySubscription:
    def __init__(self, bus: InMemoryEventBus, run_id: str) -> None:
        self._bus = bus
        self.run_id = run_id
        self._events: asyncio.Queue[RunEvent] = asyncio.Queue()
        self.closed = False

    def deliver(self, event: RunEvent) -> None:
        self._events.put_nowait(event)

    async def next_event(self, timeout: float) -> RunEvent | None:
        if self.closed:
            return None
        try:
            return await asyncio.wait_for(self._events.get(), timeout)
        except TimeoutError:
            return None

    async def aclose(self) -> None:
        if not self.closed:
            self.closed = True
            self._bus._unsubscribe(self)

    async def __aiter__(self) -> AsyncIterator[RunEvent]:
        while not self.closed:
            yield await self._events.get()


class InMemoryEventBus:
    """Delivers each published event to every open subscription of its run, in publish order."""

    def __init__(self) -> None:
        self._subscriptions: dict[str, list[InMemorySubscription]] = {}
        self.published: list[RunEvent] = []

    async def publish(self, event: RunEvent) -> None:
        self.published.append(event)
        for subscription in self._subscriptions.get(event.run_id, []):
            subscription.deliver(event)

    async def publish_batch(self, events: Sequence[RunEvent]) -> None:
        for event in events:
            await self.publish(event)

    async def subscribe(self, run_id: str) -> InMemorySubscription:
        subscription = InMemorySubscription(self, run_id)
        self._subscriptions.setdefault(run_id, []).append(subscription)
        return subscription

    def open_subscriptions(self) -> list[str]:
        """Run ids with a subscription still open (one entry per subscription)."""
        return [run_id for run_id, subs in self._subscriptions.items() for _ in subs]

    def _unsubscribe(self, subscription: InMemorySubscription) -> None:
        subs = self._subscriptions.get(subscription.run_id, [])
        subs.remove(subscription)
        if not subs:
            del self._subscriptions[subscription.run_id]

    async def aclose(self) -> None:
        for subs in list(self._subscriptions.values()):
            for subscription in list(subs):
                await subscription.aclose()


class InMemoryQueue:
    """FIFO jobs, one per run; a taken job is active until completed or failed.

    A job is held by the task that took it: once that task has ended without completing or
    failing the job (it was cancelled mid-run), ``recover_stalled`` queues the job again.
    """

    def __init__(self) -> None:
        self._waiting: deque[Job] = deque()
        self._active: dict[str, Job] = {}
        self._takers: dict[str, asyncio.Task[object] | None] = {}
        self._known: set[str] = set()
        # Takes whose job was handed to another taker: ending them does nothing (as in BullMQ).
        self._handed_on: set[tuple[str, int]] = set()
        self.completed: list[Job] = []
        self.failed: list[tuple[Job, str]] = []
        self._job_waiting = asyncio.Event()

    async def enqueue(self, run_id: str) -> None:
        if run_id in self._known:
            return
        self._known.add(run_id)
        self._waiting.append(Job(run_id=run_id))
        self._job_waiting.set()

    async def wait_for_job(self, timeout: float) -> bool:
        if not self._waiting:
            self._job_waiting.clear()
            try:
                await asyncio.wait_for(self._job_waiting.wait(), timeout)
            except TimeoutError:
                return False
        return True

    async def take_next(self) -> Job | None:
        if not self._waiting:
            return None
        job = self._waiting.popleft()
        self._active[job.run_id] = job
        self._takers[job.run_id] = asyncio.current_task()
        return job

    async def complete(self, job: Job) -> None:
        if not self._was_handed_on(job):
            self.completed.append(self._finish(job))

    async def fail(self, job: Job, error: str) -> None:
        if self._was_handed_on(job):
            return
        failed = self._finish(job)
        self.failed.append((failed, error))
        if failed.attempt < MAX_JOB_ATTEMPTS:
            self._waiting.append(replace(failed, attempt=failed.attempt + 1))  # no delay: no timers
            self._job_waiting.set()

    def _was_handed_on(self, job: Job) -> bool:
        if (job.run_id, job.attempt) in self._handed_on:
            self._handed_on.discard((job.run_id, job.attempt))
            return True
        return False

    def _finish(self, job: Job) -> Job:
        try:
            self._takers.pop(job.run_id, None)
            return self._active.pop(job.run_id)
        except KeyError:
            raise InvalidArgument(f"job for run {job.run_id!r} is not active") from None

    def requeue_active(self, run_ids: Iterable[str] | None = None) -> list[Job]:
        """Put active jobs back at the front, as a stalled-job checker does for a lost worker:
        all of them, or those of ``run_ids`` that are still active."""
        if run_ids is None:
            return self._requeue(list(self._active))
        return self._requeue([run_id for run_id in run_ids if run_id in self._active])

    def _requeue(self, run_ids: list[str]) -> list[Job]:
        stalled: list[Job] = []
        for run_id in run_ids:
            job = self._active.pop(run_id)
            self._takers.pop(run_id, None)
            self._handed_on.add((run_id, job.attempt))
            stalled.append(replace(job, attempt=job.attempt + 1))
        self._waiting.extendleft(reversed(stalled))
        if stalled:
            self._job_waiting.set()
        return stalled

    async def counts(self) -> QueueCounts:
        return QueueCounts(waiting=len(self._waiting), active=len(self._active))

    async def recover_stalled(self) -> list[str]:
        """Queue again the jobs whose taking task ended without completing or failing them."""
        lost = [
            run_id for run_id, taker in self._takers.items() if taker is not None and taker.done()
        ]
        return [job.run_id for job in self._requeue(lost)]

    def may_have_lost_jobs(self) -> bool:
        return False  # it loses nothing

    async def has_live_job(self, run_id: str) -> bool:
        return run_id in self._active or any(job.run_id == run_id for job in self._waiting)

    async def aclose(self) -> None:
        return None


def _changed(run: Run, **changes: object) -> Run:
    """``dataclasses.replace`` without its per-call look at the fields, for the hot paths:
    ``Run`` is a frozen dataclass whose ``__init__`` checks nothing, so a copy of its fields with
    some changed is the same value ``replace`` makes."""
    changed = object.__new__(Run)
    changed.__dict__.update(run.__dict__, **changes)
    return changed


@dataclass
class _StoredRun:
    run: Run
    events: list[RunEvent] = field(default_factory=list)
    steps: dict[int, StepRecord] = field(default_factory=dict)
    cancel_requested: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class InMemoryOutboxClaim:
    store: InMemoryRunStore
    rows: Sequence[OutboxRow]

    async def mark_published(self, rows: Sequence[OutboxRow]) -> None:
        for row in rows:
            self.store._outbox.pop(row.id, None)
        if self.store._max_finished_runs is not None:
            self.store._forget_finished_runs()


class InMemoryRunStore:
    """Runs, events and outbox in dicts; every method is atomic because none of them awaits.

    ``max_finished_runs``: keep at most that many ended runs (for a long-running server), the
    oldest ended forgotten first once its outbox rows are published; None keeps every run.
    ``max_payload_bytes``: the largest run input, event data or step result, as JSON.
    """

    def __init__(
        self,
        *,
        max_finished_runs: int | None = None,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
    ) -> None:
        if max_finished_runs is not None and (
            isinstance(max_finished_runs, bool)
            or not isinstance(max_finished_runs, int)
            or max_finished_runs < 0
        ):
            raise InvalidArgument(
                f"max_finished_runs must be an int >= 0 or None, got {max_finished_runs!r}"
            )
        self._max_finished_runs = max_finished_runs
        self.max_payload_bytes = check_payload_limit(max_payload_bytes)
        self._finished: dict[str, None] = {}  # ended runs, in the order they ended
        self._runs: dict[str, _StoredRun] = {}
        self._outbox: dict[int, OutboxRow] = {}
        self._claimed: set[int] = set()
        self._outbox_ids = itertools.count(1)
        # Set: the first wait returns at once, as the port says.
        self._outbox_appended = asyncio.Event()
        self._outbox_appended.set()

    async def create_run(self, run: Run) -> None:
        if run.id in self._runs:
            raise InvalidArgument(f"run {run.id!r} already exists")
        # Copies, as a real store would keep: a caller mutating its dict later changes nothing.
        stored_input = json_object_copy(run.input, "run input")
        json_text(stored_input, "run input", self.max_payload_bytes)  # measured as SQL stores do
        self._runs[run.id] = _StoredRun(_changed(run, input=stored_input))

    async def get_run(self, run_id: str) -> Run:
        return self._stored(run_id).run

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
        stored = self._stored(run_id)
        run = stored.run
        appended = next_run_event(
            run_id,
            run.status,
            run.last_seq,
            type,
            data,
            expected_status=expected_status,
            current_attempt=run.attempt,
            attempt=attempt,
            max_payload_bytes=self.max_payload_bytes,
            cancel_requested=run.cancel_requested,
        )
        event = appended.event
        stored.events.append(event)
        stored.run = _changed(run, status=appended.status, last_seq=event.seq, updated_at=at)
        row_id = next(self._outbox_ids)
        self._outbox[row_id] = OutboxRow(id=row_id, event=event)
        self._outbox_appended.set()
        if event.is_terminal and self._max_finished_runs is not None:
            self._finished[run_id] = None
        return event

    def _forget_finished_runs(self) -> None:
        """Down to ``max_finished_runs``, oldest first, stopping at one with unpublished rows
        (its live subscribers may still need it from the store)."""
        assert self._max_finished_runs is not None
        while len(self._finished) > self._max_finished_runs:
            oldest = next(iter(self._finished))
            if any(row.event.run_id == oldest for row in self._outbox.values()):
                return
            del self._finished[oldest]
            del self._runs[oldest]

    async def read_events(
        self, run_id: str, from_seq: int = 1, limit: int | None = None
    ) -> list[RunEvent]:
        events = self._stored(run_id).events[from_seq - 1 :]
        return events if limit is None else events[:limit]

    async def request_cancel(self, run_id: str, *, at: datetime) -> bool:
        stored = self._stored(run_id)
        run = stored.run
        if run.cancel_requested or run.status.is_terminal:
            return False
        stored.run = _changed(run, cancel_requested=True, updated_at=at)
        stored.cancel_requested.set()
        return True

    async def acquire_lease(self, run_id: str, *, at: datetime, until: datetime) -> Run | None:
        stored = self._stored(run_id)
        run = stored.run
        if run.status.is_terminal or run.lease_is_live(at):
            return None
        stored.run = _changed(run, attempt=run.attempt + 1, lease_until=until)
        return stored.run

    async def renew_lease(self, run_id: str, attempt: int, *, until: datetime) -> bool:
        stored = self._stored(run_id)
        if stored.run.status.is_terminal or stored.run.attempt != attempt:
            return False
        stored.run = _changed(stored.run, lease_until=until)
        return True

    async def list_lapsed_leases(self, *, at: datetime, limit: int = 100) -> list[Run]:
        lapsed = [
            stored.run
            for stored in self._runs.values()
            if stored.run.status is RunStatus.RUNNING
            and stored.run.lease_until is not None
            and not stored.run.lease_is_live(at)
        ]
        return sorted(lapsed, key=lambda run: (run.lease_until or at, run.id))[:limit]

    async def wait_for_cancel(self, run_id: str, timeout: float) -> bool:
        stored = self._stored(run_id)
        if not stored.run.cancel_requested:
            try:
                await asyncio.wait_for(stored.cancel_requested.wait(), timeout)
            except TimeoutError:
                return False
        return True

    async def record_step(self, record: StepRecord) -> None:
        check_step_result(record)
        stored = self._stored(record.run_id)
        check_step_can_be_recorded(stored.run, record, record.index in stored.steps)
        step_result_json(record, self.max_payload_bytes)  # measured as the SQL stores do
        stored.steps[record.index] = replace(record, result=copy.deepcopy(record.result))

    async def read_steps(self, run_id: str) -> list[StepRecord]:
        return [step for _, step in sorted(self._stored(run_id).steps.items())]

    async def list_stale_runs(self, *, updated_before: datetime, limit: int = 100) -> list[Run]:
        stale = [
            stored.run
            for stored in self._runs.values()
            if not stored.run.status.is_terminal and stored.run.updated_at < updated_before
        ]
        return sorted(stale, key=lambda run: (run.updated_at, run.id))[:limit]

    async def pending_outbox(self, run_id: str | None = None) -> list[OutboxRow]:
        return [
            row for row in self._outbox.values() if run_id is None or row.event.run_id == run_id
        ]

    async def count_pending_outbox(self, run_id: str | None = None) -> int:
        return len(self._outbox) if run_id is None else len(await self.pending_outbox(run_id))

    async def delete_published_outbox(self, *, published_for: float, limit: int = 1000) -> int:
        return 0  # rows leave this outbox as soon as they are marked published

    @asynccontextmanager
    async def claim_outbox(
        self, *, run_id: str | None = None, limit: int = 500
    ) -> AsyncIterator[InMemoryOutboxClaim]:
        candidates = (
            row
            for row in self._outbox.values()
            if row.id not in self._claimed and (run_id is None or row.event.run_id == run_id)
        )
        rows = list(itertools.islice(candidates, limit))
        ids = {row.id for row in rows}
        self._claimed |= ids
        try:
            yield InMemoryOutboxClaim(self, rows)
        finally:
            self._claimed -= ids

    async def wait_for_outbox(self, timeout: float) -> bool:
        if not self._outbox_appended.is_set():
            try:
                await asyncio.wait_for(self._outbox_appended.wait(), timeout)
            except TimeoutError:
                return False
        self._outbox_appended.clear()
        return True

    async def create_schema(self) -> None:
        return None

    def run_ids(self) -> list[str]:
        return list(self._runs)

    def _stored(self, run_id: str) -> _StoredRun:
        try:
            return self._runs[run_id]
        except KeyError:
            raise RunNotFound(run_id) from None

    async def aclose(self) -> None:
        return None
