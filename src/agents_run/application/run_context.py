"""The context an agent declared ``async def agent(input, ctx)`` receives: who it is, and the
calls whose results may differ between executions (effects, time, randomness), recorded in the
run's journal."""

from __future__ import annotations

import asyncio
import copy
import inspect
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from agents_run.application.infra import Infra
from agents_run.application.leases import record_step_as_holder
from agents_run.arguments import require_positive_int, require_seconds
from agents_run.domain.differences import difference_line
from agents_run.domain.journal import StepKind, StepRecord
from agents_run.domain.json_data import ensure_json_value
from agents_run.errors import (
    HistoryEnded,
    InvalidArgument,
    PayloadTooLarge,
    ReplayDiverged,
    StepResultNotJson,
)

log = logging.getLogger("agents_run.worker")


@dataclass(frozen=True)
class RetryPolicy:
    """How ``ctx.step`` retries ``fn``: up to ``attempts`` calls in all, waiting ``backoff``
    seconds (on the infra's clock) after the first failure, then ``multiplier`` times longer each
    time up to ``max_backoff``; only errors that are instances of ``retry_on`` are retried."""

    attempts: int = 3
    backoff: float = 1.0
    multiplier: float = 2.0
    max_backoff: float = 60.0
    retry_on: tuple[type[BaseException], ...] = (Exception,)

    def __post_init__(self) -> None:
        require_positive_int(self.attempts, "RetryPolicy.attempts")
        require_seconds(self.backoff, "RetryPolicy.backoff")
        require_seconds(self.max_backoff, "RetryPolicy.max_backoff")
        if isinstance(self.multiplier, bool) or not (
            isinstance(self.multiplier, int | float) and self.multiplier >= 1
        ):
            raise InvalidArgument(f"RetryPolicy.multiplier must be >= 1, got {self.multiplier!r}")
        if not isinstance(self.retry_on, tuple) or not all(
            isinstance(kind, type) and issubclass(kind, Exception) for kind in self.retry_on
        ):
            raise InvalidArgument(
                f"RetryPolicy.retry_on must be a tuple of Exception classes, got {self.retry_on!r}"
            )

    def delay_after(self, failures: int) -> float:
        """Seconds to wait after the ``failures``-th failed call."""
        return float(min(self.backoff * self.multiplier ** (failures - 1), self.max_backoff))


class RunContext:
    """One execution of one run, as its agent sees it.

    ``ctx.step``, ``ctx.now`` and ``ctx.sleep`` are recorded in the run's journal (the store, not
    the event stream), numbered in call order (when they are called, not when they end: steps run
    concurrently, with ``asyncio.gather``, replay in the order they were called). ``ctx.now``
    values are written with the next recorded call or step, so an execution interrupted before
    then records nothing of them.
    """

    def __init__(
        self,
        infra: Infra,
        *,
        run_id: str,
        agent: str,
        attempt: int,
        journal: Sequence[StepRecord] = (),
        live: bool = True,
    ) -> None:
        self._infra = infra
        self._run_id = run_id
        self._agent = agent
        self._attempt = attempt
        self._next_index = 1
        self._unwritten: list[StepRecord] = []
        self._random: random.Random | None = None
        self._failed_steps: list[tuple[BaseException, str]] = []
        self.store_failure: Exception | None = None
        # Replay: the journal a previous attempt recorded, returned by index; a call whose index
        # it lacks (past its end, or in flight when that attempt stopped) runs live. The first
        # call that departs from it is the run's divergence.
        self._journal = {record.index: record for record in journal}
        self.divergence: str | None = None
        # live=False (agents-run replay): a call the journal lacks raises HistoryEnded instead of
        # running; ``history_ended`` keeps its kind and name.
        self._live = live
        self.history_ended: tuple[StepKind, str] | None = None
        # Held while a result is written: the worker interrupts the agent only outside it, so a
        # result is recorded whole or not at all.
        self.recording = asyncio.Lock()

    def __repr__(self) -> str:
        return (
            f"RunContext(run_id={self._run_id!r}, agent={self._agent!r}, attempt={self._attempt})"
        )

    @property
    def run_id(self) -> str:
        return self._run_id

    @property
    def agent(self) -> str:
        return self._agent

    @property
    def attempt(self) -> int:
        """1 on the run's first execution."""
        return self._attempt

    def now(self) -> datetime:
        """The infra's time (a ``ManualClock`` in tests), recorded for replay."""
        index, recorded = self._called(StepKind.NOW, "now")
        if recorded is not None:
            return datetime.fromisoformat(recorded.result)
        value = self._infra.clock.now()
        self._unwritten.append(self._entry(index, StepKind.NOW, "now", value.isoformat()))
        return value

    def random(self) -> random.Random:
        """A ``random.Random`` seeded from the run id: the same numbers on every execution."""
        if self._random is None:
            self._random = random.Random(f"agents-run:{self._run_id}")
        return self._random

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` on the infra's clock: at once under ``ManualClock``, which moves."""
        require_seconds(seconds, "seconds")
        index, recorded = self._called(StepKind.SLEEP, "sleep")
        if recorded is not None:
            return  # slept before the resume: its time has passed
        until = self._infra.clock.now() + timedelta(seconds=seconds)
        await self._record(
            index, StepKind.SLEEP, "sleep", {"seconds": seconds, "until": until.isoformat()}
        )
        await self._infra.clock.sleep(seconds)

    async def step(
        self,
        name: str,
        fn: Callable[..., Any],
        /,
        *args: Any,
        retry: RetryPolicy | None = None,
        **kwargs: Any,
    ) -> Any:
        """Call ``fn(*args, **kwargs)`` (sync or async), record its JSON result, return it.

        An error of ``fn`` is raised here once ``retry`` (default: no retry) gives up; a result
        that is not JSON raises ``StepResultNotJson``, one over the store's size limit
        ``PayloadTooLarge``. Either way nothing is recorded. (To pass
        ``fn`` a keyword argument named ``retry``, bind it with ``functools.partial``.)
        """
        if not isinstance(name, str) or not name.strip():
            raise InvalidArgument(f"a step name must be a non-empty string, got {name!r}")
        if not callable(fn):
            raise InvalidArgument(f"step {name!r}: fn must be callable, got {fn!r}")
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise InvalidArgument(f"step {name!r}: retry must be a RetryPolicy, got {retry!r}")
        index, recorded = self._called(StepKind.STEP, name)
        if recorded is not None:
            return copy.deepcopy(recorded.result)  # recorded before the resume: fn is not called
        result = await self._call(name, fn, args, kwargs, retry or RetryPolicy(attempts=1))
        try:
            ensure_json_value(result, f"the result of step {name!r}")
        except InvalidArgument as error:
            failure = StepResultNotJson(f"step {name!r} returned what JSON cannot hold: {error}")
            self._failed_steps.append((failure, name))
            raise failure from None
        await self._record(index, StepKind.STEP, name, result)
        return result

    async def _call(
        self,
        name: str,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        retry: RetryPolicy,
    ) -> Any:
        failures = 0
        while True:
            try:
                result = fn(*args, **kwargs)
                return await result if inspect.isawaitable(result) else result
            except Exception as error:
                failures += 1
                if failures >= retry.attempts or not isinstance(error, retry.retry_on):
                    self._failed_steps.append((error, name))
                    raise
                delay = retry.delay_after(failures)
                log.warning(
                    "run %s: step %r failed (%s: %s), call %d of %d; retrying in %gs",
                    self._run_id,
                    name,
                    type(error).__name__,
                    error,
                    failures,
                    retry.attempts,
                    delay,
                )
                await self._infra.clock.sleep(delay)

    def _called(self, kind: StepKind, name: str) -> tuple[int, StepRecord | None]:
        """This call's journal index, and the journal's entry for it, or None where it has none
        (the call runs live); raises ``ReplayDiverged`` where the entry is another call's."""
        if self.divergence is not None:
            raise ReplayDiverged(self.divergence)
        index = self._next_index
        self._next_index += 1
        recorded = self._journal.get(index)
        if recorded is None:
            if self._live:
                return index, None
            self.history_ended = self.history_ended or (kind, name)
            raise HistoryEnded(f"the record ends before this {kind.value} {name!r}")
        if (recorded.kind, recorded.name) != (kind, name):
            self.divergence = difference_line(
                f"journal entry {recorded.index}",
                {"call": recorded.kind.value, "name": recorded.name},
                {"call": kind.value, "name": name},
            )
            raise ReplayDiverged(self.divergence)
        return index, recorded

    @property
    def journal_left(self) -> list[StepRecord]:
        """The journal's entries that no call has replayed yet."""
        return [
            self._journal[index] for index in sorted(self._journal) if index >= self._next_index
        ]

    def step_that_raised(self, error: BaseException) -> str | None:
        """The name of the step whose failure ``error`` is (or was caused by), if any."""
        seen: set[int] = set()
        current: BaseException | None = error
        while current is not None and id(current) not in seen:
            seen.add(id(current))
            for failed, name in self._failed_steps:
                if failed is current:
                    return name
            current = current.__cause__ or current.__context__
        return None

    async def flush(self) -> None:
        """Write the ``ctx.now`` values not yet in the journal (before the next event)."""
        while self._unwritten:
            await record_step_as_holder(self._infra, self._unwritten[0])
            del self._unwritten[0]

    async def _record(self, index: int, kind: StepKind, name: str, result: Any) -> None:
        entry = self._entry(index, kind, name, result)
        async with self.recording:
            try:
                await self.flush()
                await record_step_as_holder(self._infra, entry)
            except PayloadTooLarge as error:  # the agent's doing: raised into it, nothing kept
                self._next_index = entry.index
                self._failed_steps.append((error, name))
                raise
            except Exception as error:
                self.store_failure = error  # the worker's failure, not the agent's
                raise

    def _entry(self, index: int, kind: StepKind, name: str, result: Any) -> StepRecord:
        return StepRecord(
            run_id=self._run_id,
            index=index,
            attempt=self._attempt,
            kind=kind,
            name=name,
            result=result,
        )
