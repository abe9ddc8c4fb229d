"""What interrupts an agent mid-step: a cancel request (pushed by the store, which holds the
flag) or the worker being stopped. Each step of the agent runs in a task of its own, which is
cancelled where one of them comes first."""

from __future__ import annotations

import asyncio
import contextvars
import enum
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from agents_run.application.eager_steps import EagerStep
from agents_run.application.failures import log_infra_error
from agents_run.application.infra import Infra
from agents_run.application.run_context import RunContext

log = logging.getLogger("agents_run.worker")

# The fallback read of the cancel flag where a push was lost: the cross-process bound.
CANCEL_POLL_SECONDS = 1.0
# How long an interrupted agent may take to unwind (its finally blocks) before the worker goes on.
UNWIND_SECONDS = 10.0


class Outcome(enum.Enum):
    STEP = "step"  # the agent yielded ``value``
    END = "end"  # the agent returned
    ERROR = "error"  # the agent raised ``value``
    CANCELLED = "cancelled"  # interrupted: cancellation was requested
    STOPPED = "stopped"  # interrupted: the worker was told to stop


@dataclass(frozen=True)
class Next:
    outcome: Outcome
    value: Any = None


class Interruptions:
    """``async with Interruptions(...) as watch: await watch.next_step(steps)``."""

    def __init__(
        self, infra: Infra, run_id: str, ctx: RunContext, stop: asyncio.Event | None
    ) -> None:
        self._infra = infra
        self._run_id = run_id
        self._ctx = ctx
        self._stop = stop
        # One context for every step: context variables the agent sets survive its yields.
        self._context = contextvars.copy_context()
        self._watchers: dict[Outcome, asyncio.Task[object]] = {}
        self._finished = False

    async def __aenter__(self) -> Interruptions:
        self._watchers[Outcome.CANCELLED] = asyncio.create_task(self._watch_cancel())
        if self._stop is not None:
            self._watchers[Outcome.STOPPED] = asyncio.create_task(self._stop.wait())
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._finished = True
        for watcher in self._watchers.values():
            watcher.cancel()
        # Bounded: Python 3.11's wait_for (in database drivers) can swallow a cancellation;
        # the watcher then ends after its current wait, at the latest.
        await asyncio.wait(self._watchers.values(), timeout=CANCEL_POLL_SECONDS + 1)

    async def next_step(self, steps: AsyncIterator[Any]) -> Next:
        """The agent's next yield, return or error; or the interruption that came first."""
        for outcome, watcher in self._watchers.items():
            if watcher.done():  # as the wait below would find it, without starting the step
                return Next(outcome)
        step = EagerStep(_advance(steps), self._context)
        if step.ended:
            return _ended(step)
        task = step.task
        try:
            await asyncio.wait(
                [task, *self._watchers.values()], return_when=asyncio.FIRST_COMPLETED
            )
        except BaseException:
            await self._interrupt(task)  # this worker is cancelled: so is the agent
            raise
        if task.done():
            return _ended(step)
        reason = next(outcome for outcome, watcher in self._watchers.items() if watcher.done())
        await self._interrupt(task)
        return Next(reason)

    @property
    def cancelled(self) -> bool:
        """True once the cancel watcher saw a request: checked between steps, without a read."""
        return self._watchers[Outcome.CANCELLED].done()

    async def _interrupt(self, task: asyncio.Task[Next]) -> None:
        # Never in the middle of writing a result: that one is recorded whole, then interrupted.
        async with self._ctx.recording:
            task.cancel()
        done, _ = await asyncio.wait([task], timeout=UNWIND_SECONDS)
        if not done:
            log.error(
                "run %s: the agent did not stop within %gs of being interrupted (does it catch "
                "CancelledError?); it is left running",
                self._run_id,
                UNWIND_SECONDS,
            )
        elif not task.cancelled():
            task.exception()  # retrieved: whatever it raised while unwinding is moot now

    @property
    def finished(self) -> bool:
        return self._finished

    async def _watch_cancel(self) -> None:
        store = self._infra.store
        while not self._finished:
            try:
                if await store.wait_for_cancel(self._run_id, CANCEL_POLL_SECONDS):
                    return
            except Exception as error:
                if self.finished:
                    return
                log_infra_error(
                    f"run {self._run_id}: watching for a cancel request failed; retrying in "
                    f"{CANCEL_POLL_SECONDS:g}s",
                    error,
                )
                await asyncio.sleep(CANCEL_POLL_SECONDS)


def _ended(step: EagerStep[Next]) -> Next:
    try:
        return step.result()
    except asyncio.CancelledError:  # by the agent's own code, not by us
        return Next(Outcome.ERROR, asyncio.CancelledError("the agent's step was cancelled"))


async def _advance(steps: AsyncIterator[Any]) -> Next:
    try:
        return Next(Outcome.STEP, await anext(steps))
    except StopAsyncIteration:
        return Next(Outcome.END)
    except Exception as error:
        return Next(Outcome.ERROR, error)
