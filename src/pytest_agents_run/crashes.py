"""Crash injection: make the worker die at a boundary of its work, then let another worker take
over; in memory and deterministic. docs/testing.md ("Crashing the worker") shows how.

``crash_at(point, nth)`` hands the code of its block the current infra behind a thin proxy of
its three ports. The ``nth`` time that code passes ``point`` (one port call, see ``BOUNDARIES``)
the proxy raises ``WorkerCrashed``, a ``BaseException`` that no worker or agent code takes for an
error to record; from then on every port call of that code raises it again, so nothing the dying
worker would still do (fail its job, release its lease, mark rows published) reaches the
infrastructure, as after ``kill -9``. ``CrashInjection.take_over()`` is the next worker.
No hook in the worker: the crash lives in the ports the worker reaches through ``get_infra()``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import inspect
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import Any, cast

from agents_run import Infra, InMemoryQueue, ManualClock, get_infra, run_until_idle, use_infra
from agents_run.application.take_over_runs import take_over_lapsed_runs
from agents_run.arguments import require_positive_int, require_seconds
from agents_run.domain.journal import StepKind, StepRecord
from agents_run.errors import AgentsRunError, InvalidArgument
from agents_run.ports import EventBusPort, Job, QueuePort, RunStorePort


class Crash(enum.Enum):
    """Where the worker dies: each point lies between two of its effects."""

    AFTER_TAKE = "after-take"  # the job taken, the run's lease acquired; nothing appended
    AFTER_STEP_RAN = "after-step-ran"  # a ctx.step's fn returned; its result not recorded
    AFTER_APPEND = "after-append"  # an event and its outbox row appended; not published
    MID_PUBLISH = "mid-publish"  # a chunk of a claimed outbox batch published; not marked
    BEFORE_COMPLETE = "before-complete"  # the terminal event appended; the job not completed


class WorkerCrashed(BaseException):
    """The simulated death of the worker's process. A ``BaseException``, as ``KeyboardInterrupt``
    is, so that no ``except Exception`` of the worker or of an agent records it as a failure."""

    def __init__(self, message: str, point: Crash, nth: int) -> None:
        super().__init__(message)
        self.point = point
        self.nth = nth


class CrashPointNotReached(AgentsRunError, AssertionError):
    """The block of ``crash_at`` ended without passing its point ``nth`` times."""


class CrashInjectionError(AgentsRunError):
    """``take_over`` cannot play the next worker here (nothing crashed, no ``ManualClock``, or a
    crashed worker's job on a queue other than ``InMemoryQueue``)."""


Arguments = tuple[tuple[Any, ...], dict[str, Any]]


@dataclasses.dataclass(frozen=True)
class Boundary:
    """The port call at which the worker passes ``point``: once the call returned
    (``after_the_call``) or instead of making it, where ``passes(arguments, result)`` holds."""

    point: Crash
    after_the_call: bool
    passes: Callable[[Arguments, Any], bool] = lambda _arguments, _result: True


def _records_a_step(arguments: Arguments, _result: Any) -> bool:
    args, kwargs = arguments
    record: StepRecord = args[0] if args else kwargs["record"]
    return record.kind is StepKind.STEP  # not ctx.now or ctx.sleep


# Every crash point, by port (the Infra field) and method: the one place they are defined.
BOUNDARIES: Mapping[str, Mapping[str, Boundary]] = {
    "store": {
        "acquire_lease": Boundary(Crash.AFTER_TAKE, True, lambda _, run: run is not None),
        "record_step": Boundary(Crash.AFTER_STEP_RAN, False, _records_a_step),
        "append_event": Boundary(Crash.AFTER_APPEND, True),
    },
    "bus": {"publish_batch": Boundary(Crash.MID_PUBLISH, True)},
    "queue": {"complete": Boundary(Crash.BEFORE_COMPLETE, False)},
}


class CrashInjection:
    """What ``crash_at`` arms: how often each point was passed, the crash once it came, and the
    next worker (``take_over``)."""

    def __init__(self, point: Crash | None, nth: int, infra: Infra) -> None:
        self.point = point
        self.nth = nth
        self.occurrences: Counter[Crash] = Counter()
        self.crashed: WorkerCrashed | None = None
        self._infra = infra
        self._held: dict[str, Job] = {}  # jobs the worker took and did not complete or fail
        self._came = asyncio.Event()
        self.crashing_infra = dataclasses.replace(
            infra,
            bus=cast(EventBusPort, _CrashingPort(infra.bus, "bus", self)),
            queue=cast(QueuePort, _CrashingPort(infra.queue, "queue", self)),
            store=cast(RunStorePort, _CrashingPort(infra.store, "store", self)),
        )

    def __repr__(self) -> str:
        where = self.point.name if self.point is not None else "nowhere"
        return f"<CrashInjection at {where} nth={self.nth} crashed={self.crashed is not None}>"

    def _check_alive(self) -> None:
        if self.crashed is not None:
            raise WorkerCrashed(
                f"{self.crashed} (and its process is gone: nothing it does reaches the infra)",
                self.crashed.point,
                self.crashed.nth,
            )

    def _reached(self, boundary: Boundary, arguments: Arguments, result: Any) -> None:
        """A call at ``boundary`` was made (or is about to be): crash where it is the one."""
        if not boundary.passes(arguments, result):
            return
        point = boundary.point
        self.occurrences[point] += 1
        if point is self.point and self.occurrences[point] == self.nth:
            self.crashed = WorkerCrashed(
                f"the worker crashed at {point.name} (occurrence {self.nth})", point, self.nth
            )
            self._came.set()
            raise self.crashed

    async def wait(self, timeout: float = 30.0) -> WorkerCrashed:
        """Wait for the crash, where the worker runs in tasks of its own (``running_worker()``
        in the block); ``CrashPointNotReached`` after ``timeout`` seconds."""
        require_seconds(timeout, "timeout", positive=True)
        try:
            async with asyncio.timeout(timeout):
                await self._came.wait()
        except TimeoutError:
            raise CrashPointNotReached(
                f"{self!r}: no crash within {timeout:g}s; is a worker running in the block?"
            ) from None
        assert self.crashed is not None
        return self.crashed

    def _called(self, port: str, method: str, arguments: Arguments, result: Any) -> None:
        """Keep track of the jobs the worker holds, which ``take_over`` hands on."""
        if port != "queue":
            return
        if method == "take_next" and result is not None:
            self._held[result.run_id] = result
        elif method in ("complete", "fail"):
            args, kwargs = arguments
            job: Job = args[0] if args else kwargs["job"]
            self._held.pop(job.run_id, None)

    async def take_over(self, *, scan_leases: bool = True) -> list[str]:
        """Be the next worker, on the infra ``crash_at`` found: move the ``ManualClock`` on by a
        lease (the crashed worker renews nothing, so its leases lapse), hand on the jobs it held
        (``InMemoryQueue.requeue_active``, as a stalled-job check does), take over the runs
        whose lease lapsed (``take_over_lapsed_runs``, unless ``scan_leases`` is False: then only
        the queue hands them on), and ``run_until_idle()``. Returns the run ids taken over from
        the lease scan."""
        if self.crashed is None:
            raise CrashInjectionError(
                "take_over(): nothing crashed; call it after crash_at's block"
            )
        # The current infra, so that another crash_at around this call crashes the next worker;
        # never this crash's own (called inside its block): that worker is dead.
        current = get_infra()
        infra = self._infra if current is self.crashing_infra else current
        if not isinstance(infra.clock, ManualClock):
            raise CrashInjectionError(
                "take_over() lets the crashed worker's leases lapse by moving the infra's "
                f"ManualClock; this infra's clock is a {infra.clock.__class__.__name__}"
            )
        infra.clock.advance(infra.lease_seconds)
        if self._held:
            if not isinstance(infra.queue, InMemoryQueue):
                raise CrashInjectionError(
                    f"the crashed worker held the jobs of {sorted(self._held)}; take_over() hands "
                    "them on with InMemoryQueue.requeue_active, and this queue is a "
                    f"{infra.queue.__class__.__name__} (mark the test agents_run_memory_only)"
                )
            infra.queue.requeue_active(list(self._held))
            self._held.clear()
        with use_infra(infra):
            taken_over = await take_over_lapsed_runs() if scan_leases else []
            await run_until_idle()
        return taken_over


class _CrashingPort:
    """One port of ``CrashInjection.crashing_infra``: passes every call through, counting the
    boundaries, until the crash; then refuses every call. Passes ``isinstance`` checks for the
    wrapped class."""

    def __init__(self, wrapped: Any, port: str, injection: CrashInjection) -> None:
        self.__wrapped__ = wrapped
        self._crash_port = port
        self._crash_injection = injection

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_crash") or name == "__wrapped__":
            raise AttributeError(name)  # not set yet (copy, pickle): no endless recursion
        target = getattr(self.__wrapped__, name)
        if not callable(target):
            return target
        injection, port = self._crash_injection, self._crash_port
        if not inspect.iscoroutinefunction(target):

            def plain(*args: Any, **kwargs: Any) -> Any:  # claim_outbox, adapter helpers
                injection._check_alive()
                return target(*args, **kwargs)

            return plain
        boundary = BOUNDARIES[port].get(name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            injection._check_alive()
            arguments = (args, kwargs)
            if boundary is not None and not boundary.after_the_call:
                injection._reached(boundary, arguments, None)
            result = await target(*args, **kwargs)
            injection._called(port, name, arguments, result)
            if boundary is not None and boundary.after_the_call:
                injection._reached(boundary, arguments, result)
            return result

        return call

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        wrapped_class: type = self.__wrapped__.__class__  # itself a proxy's, maybe (recording)
        return wrapped_class

    def __repr__(self) -> str:
        return f"<crashing {self.__wrapped__!r}>"


def crash_at(point: Crash, nth: int = 1) -> AbstractContextManager[CrashInjection]:
    """Crash the worker the ``nth`` time the code of the block passes ``point``.

    The block's code (and the tasks it starts) sees the current infra through the crashing
    proxy. The crash ends the block quietly (``WorkerCrashed`` is caught here); a block that ends
    without reaching its crash raises ``CrashPointNotReached``. Then ``await
    injection.take_over()`` lets another worker resume. Arguments are checked at the call."""
    if not isinstance(point, Crash):
        raise InvalidArgument(f"crash_at: point must be a Crash, got {point!r}")
    require_positive_int(nth, "crash_at: nth")
    return _crashing(CrashInjection(point, nth, get_infra()))


@contextmanager
def _crashing(injection: CrashInjection) -> Iterator[CrashInjection]:
    try:
        with use_infra(injection.crashing_infra):
            yield injection
    except WorkerCrashed:
        if injection.crashed is None:
            raise  # another injection's crash, around this one
    if injection.crashed is None:
        point, nth = injection.point, injection.nth
        assert point is not None
        passed = injection.occurrences[point]
        raise CrashPointNotReached(
            f"crash_at(Crash.{point.name}, nth={nth}): the block passed that point {passed} "
            f"time(s) and ended; crash at nth <= {passed} (count_crash_points() counts them)"
        )


@contextmanager
def count_crash_points() -> Iterator[Mapping[Crash, int]]:
    """How many times the code of the block passes each crash point (nothing crashes): the
    ``nth`` values a test may give ``crash_at`` for the same code."""
    injection = CrashInjection(None, 0, get_infra())
    with use_infra(injection.crashing_infra):
        yield injection.occurrences
