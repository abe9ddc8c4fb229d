"""The job queue on BullMQ (Python), driven step by step: take, then complete or fail.

The queue is ``{key_prefix}-runs`` with BullMQ's key prefix ``{key_prefix}``, so namespaces never
share keys; a job's id is its run id, which makes enqueueing idempotent per run (a job another
producer added names its run in ``data.run_id``: docs/wire-format.md). Jobs are taken
with a ``Worker`` that has no processor (BullMQ's manual processing), so nothing runs in the
background except the renewal of the locks of the jobs this adapter holds. A job whose worker
vanished keeps no lock; ``recover_stalled`` (which the worker process calls periodically) moves
it back to wait, and the next take hands it out with ``attempt`` + 1.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from bullmq import Job as BullJob
from bullmq import Queue, Worker

from agents_run.adapters.redis_connection import (
    DROPPED_CONNECTION_ERRORS,
    open_redis,
    reporting_unavailable,
)
from agents_run.arguments import require_positive_int, require_seconds
from agents_run.errors import InvalidArgument
from agents_run.ports import MAX_JOB_ATTEMPTS, Job, QueueCounts

log = logging.getLogger("agents_run.bullmq_queue")
T = TypeVar("T")

JOB_NAME = "run"
JOB_POLL_SECONDS = 0.05
DEFAULT_RETRY_DELAY_MS = 1000
DEFAULT_LOCK_DURATION_MS = 30_000
DEFAULT_STALLED_INTERVAL_MS = 30_000
# Finished jobs are kept this long, so that enqueueing a finished run again does nothing.
KEEP_COMPLETED_SECONDS = 24 * 3600
KEEP_FAILED_SECONDS = 7 * 24 * 3600
# Error codes of BullMQ's finishing script that mean "no longer ours": the lock expired and the
# job went back to wait (or to another worker). See bullmq.scripts.Scripts.finishedErrors.
_LOST_JOB_MESSAGES = (
    "Missing key for job",  # Redis lost the job (a restart without persistence, a FLUSHDB)
    "Missing lock for job",
    "Lock mismatch for job",
    "is not in the active state",
)
# Job states (Queue.getJobState) in which nobody will ever take the job again. Any other state,
# including one a later BullMQ may add, counts as live: a run is never ended under a live job.
_DEAD_JOB_STATES = frozenset({"completed", "failed", "unknown"})


def queue_name(key_prefix: str) -> str:
    return f"{key_prefix}-runs"


class BullMQQueue:
    """``QueuePort`` on BullMQ. Construction does no I/O; a server that does not answer raises
    ``InfraUnavailable`` from the first call that needs it, within ``connect_timeout`` seconds.

    ``lock_duration_ms``: how long a taken job stays locked without renewal (the adapter renews
    the locks of the jobs it holds at least every half of it, with BullMQ's lock manager).
    ``stalled_interval_ms``: how often ``recover_stalled`` actually checks, however often it is
    called, across all processes.
    ``retry_delay_ms``: the first delay before a failed job is retried (then doubling, for
    ``MAX_JOB_ATTEMPTS`` attempts in all).
    """

    def __init__(
        self,
        url: str,
        *,
        key_prefix: str,
        connect_timeout: float = 5.0,
        lock_duration_ms: int = DEFAULT_LOCK_DURATION_MS,
        stalled_interval_ms: int = DEFAULT_STALLED_INTERVAL_MS,
        retry_delay_ms: int = DEFAULT_RETRY_DELAY_MS,
    ) -> None:
        require_seconds(connect_timeout, "connect_timeout", positive=True)
        require_positive_int(lock_duration_ms, "lock_duration_ms")
        require_positive_int(stalled_interval_ms, "stalled_interval_ms")
        require_positive_int(retry_delay_ms, "retry_delay_ms")
        self.url = url
        self.name = queue_name(key_prefix)
        self.key_prefix = key_prefix
        self._retry_delay_ms = retry_delay_ms
        self._client = open_redis(
            url,
            connect_timeout=connect_timeout,
            decode_responses=True,  # as BullMQ needs
            client_name=f"{key_prefix}:queue",
        )
        options: dict[str, Any] = {"connection": self._client, "prefix": key_prefix}
        self._queue = Queue(self.name, options)
        self._worker = Worker(
            self.name,
            None,
            {
                **options,
                "autorun": False,
                "lockDuration": lock_duration_ms,
                "stalledInterval": stalled_interval_ms,
                # The application decides what a lost worker means (run_worker ends the run
                # RunFailed), so BullMQ must never fail a stalled job on its own.
                "maxStalledCount": 1_000_000,
            },
        )
        # Lock renewal runs in the background and reports its failures only as events.
        self._worker.on("error", _log_worker_error)
        self._tokens = (f"{self._worker.id}:{n}" for n in itertools.count(1))
        self._held: dict[str, BullJob] = {}  # run id -> the taken job (its token inside)
        self._closed = False
        self._maybe_lost = False  # see may_have_lost_jobs

    async def claim_deployment(self, marker: str) -> str:
        """Set this prefix's deployment marker to ``marker`` where none is set; return the marker
        set, this call's or an earlier one's (config/deployment.py). Under the queue's keys, so
        removing the prefix's keys removes it too."""
        key = f"{self.key_prefix}:{self.name}:agents-run-deployment"
        async with reporting_unavailable(self.url, "claiming the deployment marker"):
            await self._client.set(key, marker, nx=True)
            claimed = await self._client.get(key)
        return str(claimed) if claimed is not None else marker  # str: decode_responses

    async def enqueue(self, run_id: str) -> None:
        if not run_id or ":" in run_id:
            raise InvalidArgument(f"run id {run_id!r} cannot be a BullMQ job id: use no ':'")
        options = {"jobId": run_id, **self._job_options()}
        async with reporting_unavailable(self.url, f"adding the job of run {run_id}"):
            # Idempotent (the job id is the run id), so safe to send again.
            await self._twice(lambda: self._queue.add(JOB_NAME, {"run_id": run_id}, options))

    def _job_options(self) -> dict[str, Any]:
        """The options every run's job gets; docs/wire-format.md lists them for other producers."""
        return {
            "removeOnComplete": {"age": KEEP_COMPLETED_SECONDS},
            "removeOnFail": {"age": KEEP_FAILED_SECONDS},
            # fail() records the error as text; BullMQ would store the adapter's own stack.
            "stackTraceLimit": 0,
            # Retried after 1, 2, 4 ... s (about 17 minutes in all by default): see QueuePort.fail.
            "attempts": MAX_JOB_ATTEMPTS,
            "backoff": {"type": "exponential", "delay": self._retry_delay_ms},
        }

    def _adopt(self, taken: BullJob) -> str:
        """The run id of a job another producer may have added (a Node service, say), with the
        project's options filled in where it left them out: without retries, a run whose worker
        failed would never be ended by a later one."""
        data = taken.data if isinstance(taken.data, dict) else {}
        named = data.get("run_id")
        run_id = named if isinstance(named, str) and named else str(taken.id)
        options = taken.opts
        defaults = self._job_options()
        for option in ("removeOnComplete", "removeOnFail", "backoff"):
            if not options.get(option):
                options[option] = defaults[option]
        attempts = options.get("attempts")
        if not isinstance(attempts, int) or attempts < MAX_JOB_ATTEMPTS:
            options["attempts"] = MAX_JOB_ATTEMPTS
        return run_id

    async def take_next(self) -> Job | None:
        token = next(self._tokens)
        async with reporting_unavailable(self.url, "taking the next job"):
            # The non-blocking half of Worker.getNextJob: getNextJob waits on the queue's
            # marker for drainDelay once it has seen the queue empty; a take must not wait.
            taken: BullJob | None = await self._worker.moveToActive(token)
        if taken is None:
            return None
        run_id = self._adopt(taken)
        self._held[run_id] = taken
        self._worker.lockManager.start()
        self._worker.lockManager.track_job(str(taken.id), token, int(time.time() * 1000))
        return Job(run_id=run_id, attempt=int(taken.attemptsStarted))

    async def complete(self, job: Job) -> None:
        taken = self._release(job)
        async with reporting_unavailable(self.url, f"completing the job of run {job.run_id}"):
            await self._finish_unless_lost(lambda: taken.moveToCompleted(None, taken.token))

    async def fail(self, job: Job, error: str) -> None:
        taken = self._release(job)
        async with reporting_unavailable(self.url, f"failing the job of run {job.run_id}"):
            await self._finish_unless_lost(
                lambda: taken.moveToFailed(RuntimeError(error), taken.token)
            )

    async def _finish_unless_lost(self, finish: Callable[[], Awaitable[object]]) -> None:
        try:
            # Left unfinished, the job would wait for the stalled check; sent again after its
            # reply was lost, it is no longer ours: handled below.
            await self._twice(finish)
        except TypeError as error:
            if not any(message in str(error) for message in _LOST_JOB_MESSAGES):
                raise
            self._maybe_lost = True
            # Its lock expired and recover_stalled handed it on: the next taker reads the run's
            # state from the store and acts on it, so there is nothing left to do here.
            log.warning("a job was no longer held by this worker when it ended: %s", error)

    async def _twice(self, call: Callable[[], Awaitable[T]]) -> T:
        """``call()``, sent again once where a pooled connection the server dropped failed it."""
        try:
            return await call()
        except DROPPED_CONNECTION_ERRORS:
            self._maybe_lost = True  # dropped: Redis may have restarted without its jobs
            return await call()

    def may_have_lost_jobs(self) -> bool:
        lost, self._maybe_lost = self._maybe_lost, False
        return lost

    def _release(self, job: Job) -> BullJob:
        try:
            taken = self._held.pop(job.run_id)
        except KeyError:
            raise InvalidArgument(f"job for run {job.run_id!r} is not active") from None
        self._worker.lockManager.untrack_job(str(taken.id))
        return taken

    async def recover_stalled(self) -> list[str]:
        """Move jobs whose lock expired (their worker vanished) back to wait; their run ids.

        BullMQ marks active jobs on one check and moves those still unlocked on the next, at most
        once per ``stalled_interval_ms`` across all processes: call this at about that interval.
        """
        async with reporting_unavailable(self.url, "checking for stalled jobs"):
            stalled: list[str] = await self._worker.backend.moveStalledJobsToWait(
                self._worker.opts["maxStalledCount"], self._worker.opts["stalledInterval"]
            )
        if stalled:
            log.warning("jobs of runs %s lost their worker; they are queued again", stalled)
        return stalled

    async def wait_for_job(self, timeout: float) -> bool:
        """Polls the count of waiting jobs every ``JOB_POLL_SECONDS``. A failed job waiting for
        its retry is not announced: the next take after its delay moves it to wait."""
        deadline = time.monotonic() + timeout
        while True:
            async with reporting_unavailable(self.url, "counting waiting jobs"):
                waiting = int((await self._queue.getJobCounts("waiting"))["waiting"])
            remaining = deadline - time.monotonic()
            if waiting:
                return True
            if remaining <= 0:
                return False
            await asyncio.sleep(min(JOB_POLL_SECONDS, remaining))

    async def has_live_job(self, run_id: str) -> bool:
        async with reporting_unavailable(self.url, f"reading the job state of run {run_id}"):
            state: str = await self._twice(lambda: self._queue.getJobState(run_id))
        return state not in _DEAD_JOB_STATES

    async def counts(self) -> QueueCounts:
        async with reporting_unavailable(self.url, "counting jobs"):
            counts = await self._twice(
                lambda: self._queue.getJobCounts("waiting", "delayed", "active")
            )
        # A delayed job is a failed one waiting for its retry: still work to do.
        waiting = int(counts["waiting"]) + int(counts["delayed"])
        return QueueCounts(waiting=waiting, active=int(counts["active"]))

    async def aclose(self) -> None:
        """Close the worker (stopping lock renewal: held jobs are left to the stalled checker),
        the queue and their connections. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._held.clear()
        await self._worker.close()
        await self._queue.close()
        await self._client.aclose()


def _log_worker_error(error: BaseException, *_: object) -> None:
    log.warning("BullMQ worker: %s: %s", type(error).__name__, error)
