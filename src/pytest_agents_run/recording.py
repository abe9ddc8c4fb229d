"""Recording proxies: a test's infra with every effect on its ports written to a trace.

The proxies wrap whatever ports the infra factory made (in-memory today, networked tomorrow), so
the trace does not depend on any adapter's internals. Reads (``get_run``, ``read_events``,
``counts``, ...) are not effects and are passed through unrecorded.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from agents_run import Infra, RunEvent, RunStatus
from agents_run.domain.events import Run
from agents_run.domain.journal import StepRecord
from agents_run.domain.json_data import JsonObject
from agents_run.ports import (
    EventBusPort,
    Job,
    OutboxClaim,
    OutboxRow,
    QueueCounts,
    QueuePort,
    RunStorePort,
    Subscription,
)

# One JSON object per effect: {"op": ..., then the effect's fields}.
TraceEntry = dict[str, Any]
Bind = Callable[[], Awaitable[None]]


async def _unbound() -> None:
    """The default ``Bind``: nothing to note."""


class Trace:
    """The effects one test had on its infra, in the order they completed."""

    def __init__(self) -> None:
        self.entries: list[TraceEntry] = []

    def record(self, op: str, **fields: object) -> None:
        self.entries.append({"op": op, **fields})

    def record_raised(self, op: str, error: Exception, **fields: object) -> None:
        """A port call that raised is an effect too (which error, not its volatile message)."""
        self.record(op, **fields, raised=type(error).__name__)


class _TransparentProxy:
    """Delegates what it does not record and passes ``isinstance`` checks for the wrapped class
    (as ``wrapt.ObjectProxy`` does), so tests keep using adapter helpers such as
    ``InMemoryEventBus.published`` through the recorded infra."""

    def __init__(self, wrapped: Any, bind: Bind) -> None:
        self.__wrapped__ = wrapped
        # Awaited before every port call: notes the loop the ports run on (see loops.py).
        self._recording_bind = bind

    def __getattr__(self, name: str) -> Any:
        if name == "__wrapped__":  # not set yet (copy, pickle): no endless recursion
            raise AttributeError(name)
        return getattr(self.__wrapped__, name)

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        return type(self.__wrapped__)

    def __repr__(self) -> str:
        return f"<recording {self.__wrapped__!r}>"


class RecordingSubscription(_TransparentProxy):
    def __init__(self, wrapped: Subscription, bus: RecordingEventBus) -> None:
        super().__init__(wrapped, bus._recording_bind)
        self._recording_bus = bus

    async def next_event(self, timeout: float) -> RunEvent | None:
        await self._recording_bind()
        event: RunEvent | None = await self.__wrapped__.next_event(timeout)
        return event

    async def aclose(self) -> None:
        await self._recording_bind()
        await self.__wrapped__.aclose()
        self._recording_bus.forget(self)

    def __aiter__(self) -> AsyncIterator[RunEvent]:
        iterator: AsyncIterator[RunEvent] = self.__wrapped__.__aiter__()
        return iterator


class RecordingEventBus(_TransparentProxy):
    """Records publishes and subscribes; remembers which subscriptions are still open."""

    def __init__(self, wrapped: EventBusPort, trace: Trace, bind: Bind = _unbound) -> None:
        super().__init__(wrapped, bind)
        self._recording_trace = trace
        self._recording_open: list[tuple[str, RecordingSubscription]] = []

    async def publish(self, event: RunEvent) -> None:
        await self._recording_bind()
        fields = {"run_id": event.run_id, "seq": event.seq, "type": event.type}
        try:
            await self.__wrapped__.publish(event)
        except Exception as error:
            self._recording_trace.record_raised("publish", error, **fields)
            raise
        self._recording_trace.record("publish", **fields)

    async def subscribe(self, run_id: str) -> Subscription:
        await self._recording_bind()
        try:
            subscription = await self.__wrapped__.subscribe(run_id)
        except Exception as error:
            self._recording_trace.record_raised("subscribe", error, run_id=run_id)
            raise
        self._recording_trace.record("subscribe", run_id=run_id)
        recorded = RecordingSubscription(subscription, self)
        self._recording_open.append((run_id, recorded))
        return recorded

    def forget(self, subscription: RecordingSubscription) -> None:
        self._recording_open = [(r, s) for r, s in self._recording_open if s is not subscription]

    def open_subscription_run_ids(self) -> list[str]:
        """Run ids of the subscriptions opened through this bus and not closed."""
        return [run_id for run_id, _ in self._recording_open]

    async def aclose(self) -> None:
        await self._recording_bind()
        await self.__wrapped__.aclose()
        self._recording_open.clear()


class RecordingQueue(_TransparentProxy):
    """Records jobs enqueued, taken (a take that finds nothing is a poll, not an effect),
    completed and failed."""

    def __init__(self, wrapped: QueuePort, trace: Trace, bind: Bind = _unbound) -> None:
        super().__init__(wrapped, bind)
        self._recording_trace = trace

    async def enqueue(self, run_id: str) -> None:
        await self._recording_bind()
        try:
            await self.__wrapped__.enqueue(run_id)
        except Exception as error:
            self._recording_trace.record_raised("enqueue", error, run_id=run_id)
            raise
        self._recording_trace.record("enqueue", run_id=run_id)

    async def take_next(self) -> Job | None:
        await self._recording_bind()
        try:
            job: Job | None = await self.__wrapped__.take_next()
        except Exception as error:
            self._recording_trace.record_raised("take", error)
            raise
        if job is not None:
            self._recording_trace.record("take", run_id=job.run_id, attempt=job.attempt)
        return job

    async def complete(self, job: Job) -> None:
        await self._recording_bind()
        fields = {"run_id": job.run_id, "attempt": job.attempt}
        try:
            await self.__wrapped__.complete(job)
        except Exception as error:
            self._recording_trace.record_raised("complete", error, **fields)
            raise
        self._recording_trace.record("complete", **fields)

    async def fail(self, job: Job, error: str) -> None:
        await self._recording_bind()
        fields = {"run_id": job.run_id, "attempt": job.attempt, "reason": error}
        try:
            await self.__wrapped__.fail(job, error)
        except Exception as raised:
            self._recording_trace.record_raised("fail", raised, **fields)
            raise
        self._recording_trace.record("fail", **fields)

    async def counts(self) -> QueueCounts:
        await self._recording_bind()
        counts: QueueCounts = await self.__wrapped__.counts()
        return counts

    async def recover_stalled(self) -> list[str]:
        await self._recording_bind()
        recovered: list[str] = await self.__wrapped__.recover_stalled()
        return recovered

    async def has_live_job(self, run_id: str) -> bool:
        await self._recording_bind()
        live: bool = await self.__wrapped__.has_live_job(run_id)
        return live

    async def wait_for_job(self, timeout: float) -> bool:
        await self._recording_bind()
        woken: bool = await self.__wrapped__.wait_for_job(timeout)
        return woken

    async def aclose(self) -> None:
        await self._recording_bind()
        await self.__wrapped__.aclose()


class RecordingRunStore(_TransparentProxy):
    """Records runs created, events appended (data included) and cancellations requested."""

    def __init__(self, wrapped: RunStorePort, trace: Trace, bind: Bind = _unbound) -> None:
        super().__init__(wrapped, bind)
        self._recording_trace = trace

    async def create_run(self, run: Run) -> None:
        await self._recording_bind()
        fields = {"run_id": run.id, "agent": run.agent, "input": copy.deepcopy(run.input)}
        try:
            await self.__wrapped__.create_run(run)
        except Exception as error:
            self._recording_trace.record_raised("create_run", error, **fields)
            raise
        self._recording_trace.record("create_run", **fields)

    async def get_run(self, run_id: str) -> Run:
        await self._recording_bind()
        run: Run = await self.__wrapped__.get_run(run_id)
        return run

    async def append_event(
        self,
        run_id: str,
        type: str,
        data: JsonObject,
        *,
        at: datetime,
        expected_status: RunStatus | None = None,
    ) -> RunEvent:
        await self._recording_bind()
        try:
            event: RunEvent = await self.__wrapped__.append_event(
                run_id, type, data, at=at, expected_status=expected_status
            )
        except Exception as error:
            self._recording_trace.record_raised("append_event", error, run_id=run_id, type=type)
            raise
        self._recording_trace.record(
            "append_event",
            run_id=event.run_id,
            seq=event.seq,
            type=event.type,
            data=copy.deepcopy(event.data),
        )
        return event

    async def read_events(
        self, run_id: str, from_seq: int = 1, limit: int | None = None
    ) -> list[RunEvent]:
        await self._recording_bind()
        events: list[RunEvent] = await self.__wrapped__.read_events(run_id, from_seq, limit)
        return events

    async def request_cancel(self, run_id: str, *, at: datetime) -> bool:
        await self._recording_bind()
        try:
            requested: bool = await self.__wrapped__.request_cancel(run_id, at=at)
        except Exception as error:
            self._recording_trace.record_raised("request_cancel", error, run_id=run_id)
            raise
        self._recording_trace.record("request_cancel", run_id=run_id, requested=requested)
        return requested

    async def wait_for_cancel(self, run_id: str, timeout: float) -> bool:
        await self._recording_bind()
        requested: bool = await self.__wrapped__.wait_for_cancel(run_id, timeout)
        return requested

    async def record_step(self, record: StepRecord) -> None:
        await self._recording_bind()
        fields = {
            "run_id": record.run_id,
            "index": record.index,
            "attempt": record.attempt,
            "kind": record.kind.value,
            "name": record.name,
            "result": copy.deepcopy(record.result),
        }
        try:
            await self.__wrapped__.record_step(record)
        except Exception as error:
            self._recording_trace.record_raised("record_step", error, **fields)
            raise
        self._recording_trace.record("record_step", **fields)

    async def read_steps(self, run_id: str) -> list[StepRecord]:
        await self._recording_bind()
        steps: list[StepRecord] = await self.__wrapped__.read_steps(run_id)
        return steps

    async def list_stale_runs(self, *, updated_before: datetime, limit: int = 100) -> list[Run]:
        await self._recording_bind()
        runs: list[Run] = await self.__wrapped__.list_stale_runs(
            updated_before=updated_before, limit=limit
        )
        return runs

    async def pending_outbox(self, run_id: str | None = None) -> list[OutboxRow]:
        await self._recording_bind()
        rows: list[OutboxRow] = await self.__wrapped__.pending_outbox(run_id)
        return rows

    async def count_pending_outbox(self, run_id: str | None = None) -> int:
        await self._recording_bind()
        count: int = await self.__wrapped__.count_pending_outbox(run_id)
        return count

    @asynccontextmanager
    async def claim_outbox(
        self, *, run_id: str | None = None, limit: int = 500
    ) -> AsyncIterator[OutboxClaim]:
        # Publishing is recorded by the bus; marking rows published is bookkeeping.
        await self._recording_bind()
        async with self.__wrapped__.claim_outbox(run_id=run_id, limit=limit) as claim:
            yield claim

    async def wait_for_outbox(self, timeout: float) -> bool:
        await self._recording_bind()
        woken: bool = await self.__wrapped__.wait_for_outbox(timeout)
        return woken

    async def create_schema(self) -> None:
        await self._recording_bind()
        await self.__wrapped__.create_schema()

    async def aclose(self) -> None:
        await self._recording_bind()
        await self.__wrapped__.aclose()


def recording_infra(infra: Infra, trace: Trace, bind: Bind = _unbound) -> Infra:
    """``infra`` with its three ports recorded into ``trace``; ids and clock are shared.
    ``bind`` is awaited before every port call."""
    return dataclasses.replace(
        infra,
        bus=RecordingEventBus(infra.bus, trace, bind),
        queue=RecordingQueue(infra.queue, trace, bind),
        store=RecordingRunStore(infra.store, trace, bind),
    )


def open_subscription_run_ids(infra: Infra) -> Sequence[str]:
    bus = infra.bus
    return bus.open_subscription_run_ids() if isinstance(bus, RecordingEventBus) else ()
