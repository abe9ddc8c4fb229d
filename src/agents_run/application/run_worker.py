"""The worker: executes one queued run's agent step by step. It only appends; publishing is the
outbox publisher's job."""

from __future__ import annotations

import asyncio
import copy
import logging
from contextlib import suppress

from agents_run.application.agents import find_agent, get_agent
from agents_run.application.infra import Infra, get_infra
from agents_run.application.interruptions import Interruptions, Outcome
from agents_run.application.leases import (
    DEFAULT_STORE_OUTAGE_BOUND,
    acquire_lease,
    append_as_holder,
    holding_lease,
    read_as_holder,
    retried_as_holder,
)
from agents_run.application.replay import MAX_RUN_ATTEMPTS, Replay
from agents_run.application.run_context import RunContext
from agents_run.arguments import require_positive_int, require_seconds
from agents_run.domain.events import EventType, Run, RunEvent, RunStatus
from agents_run.domain.failures import FailureType, failure_data, failure_of
from agents_run.domain.journal import StepRecord
from agents_run.domain.json_data import JsonObject, ensure_json_object
from agents_run.errors import DrainDidNotSettle, InvalidArgument, StaleAttempt, StaleRunState
from agents_run.ports import Job

log = logging.getLogger("agents_run.worker")


async def run_worker_once(
    *,
    stop: asyncio.Event | None = None,
    max_steps: int | None = None,
    store_outage_bound: float = DEFAULT_STORE_OUTAGE_BOUND,
) -> bool:
    """Take at most one queued job and run its agent to the end or to cancellation.

    Returns False where no job was waiting. A failing agent ends its run with ``RunFailed``.
    The worker holds the run's lease meanwhile (see ``application.leases``); where the store is
    unavailable (``InfraUnavailable``) it retries for up to ``store_outage_bound`` seconds. A
    store or queue that fails for longer, or otherwise, raises, after recording ``RunFailed``
    (``WorkerError``) where the store still answers and failing the job (a networked queue
    retries it later, and the retry ends a run that is still running).
    Where ``stop`` is set while the agent runs (a worker shutting down), the run ends at the next
    step boundary with ``RunFailed`` of type ``WorkerShutdown``, so it never stays running.
    Where the agent yields more than ``max_steps`` steps, ``DrainDidNotSettle`` is raised (and
    the run ends ``WorkerError``): ``run_until_idle`` uses it so that an endless agent cannot
    keep it going. Where this call is cancelled (or the interpreter exits) mid-run, the job is
    failed on the way out, so that it is retried and the retry ends the run.
    """
    if max_steps is not None:
        require_positive_int(max_steps, "max_steps")
    require_seconds(store_outage_bound, "store_outage_bound")
    infra = get_infra()
    job = await infra.queue.take_next()
    if job is None:
        return False
    try:
        await _execute(infra, job, stop, max_steps, store_outage_bound)
    except Exception as error:
        await infra.queue.fail(job, f"{type(error).__name__}: {error}")
        raise
    except BaseException as stopped:
        # Best effort: where even this fails, the queue's stalled-job recovery hands it on.
        with suppress(Exception):
            await infra.queue.fail(job, f"the worker was stopped: {type(stopped).__name__}")
        raise
    # On cancellation or interpreter exit the job stays taken: the queue's stalled-job recovery
    # hands it to another worker, which ends the run WorkerLost.
    await infra.queue.complete(job)
    return True


async def _record_worker_error(infra: Infra, run_id: str, error: Exception) -> None:
    try:
        await _append(
            infra,
            run_id,
            EventType.RUN_FAILED,
            failure_data(
                FailureType.WORKER_ERROR, f"the worker failed: {type(error).__name__}: {error}"
            ),
        )
    except StaleAttempt:
        raise
    except Exception as also:
        log.warning(
            "run %s: could not record RunFailed after %s (%s); the job is failed and a retry "
            "ends the run",
            run_id,
            type(error).__name__,
            type(also).__name__,
        )


async def _execute(
    infra: Infra,
    job: Job,
    stop: asyncio.Event | None,
    max_steps: int | None,
    store_outage_bound: float,
) -> None:
    run = await infra.store.get_run(job.run_id)
    if run.status.is_terminal:
        return  # cancelled while queued, or finished by a worker whose job was retried
    taken = await acquire_lease(infra, job.run_id)
    if taken is None:
        if not (await infra.store.get_run(job.run_id)).status.is_terminal:
            # The queue handed the job out again (this worker's Redis lock lapsed, say), but
            # the worker holding the run still renews its lease: leave the run to it.
            log.info("run %s is held by a live worker; this take of its job leaves it", run.id)
        return
    await execute_taken_run(
        infra, taken, stop=stop, max_steps=max_steps, store_outage_bound=store_outage_bound
    )


async def execute_taken_run(
    infra: Infra,
    run: Run,
    *,
    stop: asyncio.Event | None = None,
    max_steps: int | None = None,
    store_outage_bound: float = DEFAULT_STORE_OUTAGE_BOUND,
) -> None:
    """Execute ``run``, just taken with ``acquire_lease``, holding its lease meanwhile.

    Where another worker takes the run over meanwhile (this one's lease lapsed), the store
    refuses this worker's next append and the run is dropped here with one log line.
    """
    try:
        async with holding_lease(infra, run, store_outage_bound=store_outage_bound):
            try:
                await _execute_held(infra, run, stop, max_steps)
            except StaleAttempt:
                raise
            except Exception as error:
                await _record_worker_error(infra, run.id, error)
                raise
    except StaleAttempt as taken_over:
        log.info("run %s dropped by this worker: %s", run.id, taken_over)


async def _execute_held(
    infra: Infra, run: Run, stop: asyncio.Event | None, max_steps: int | None
) -> None:
    if run.status is RunStatus.RUNNING:
        # A previous worker took this run and was lost mid-run: the run resumes by replay where
        # its agent allows it; otherwise the honest end is a failure that says so (or the
        # cancellation that was asked for meanwhile).
        if run.cancel_requested:
            await _append(infra, run.id, EventType.RUN_CANCELLED, {})
            return
        agent = find_agent(run.agent)
        if agent is not None and agent.resume:
            await _resume(infra, run, stop, max_steps)
            return
        await _append(
            infra,
            run.id,
            EventType.RUN_FAILED,
            failure_data(
                FailureType.WORKER_LOST,
                f"the worker running attempt {run.attempt - 1} stopped before the run ended; "
                "start a new run to retry",
            ),
        )
        log.warning("run %s ended WorkerLost: attempt %d stopped mid-run", run.id, run.attempt - 1)
        return
    if run.cancel_requested:
        # cancel_run may have recorded RunCancelled between our read and this append.
        with suppress(StaleRunState):
            await _append(
                infra, run.id, EventType.RUN_CANCELLED, {}, expected_status=RunStatus.QUEUED
            )
        return
    try:
        await _append(
            infra,
            run.id,
            EventType.RUN_STARTED,
            {"agent": run.agent},
            expected_status=RunStatus.QUEUED,
        )
    except StaleRunState:
        return  # cancelled between our read and our append: cancel_run recorded the end
    log.info("run %s started (agent %s)", run.id, run.agent)
    terminal = await _run_agent(
        infra, run.id, run.agent, run.input, attempt=run.attempt, stop=stop, max_steps=max_steps
    )
    log.info("run %s ended: %s", run.id, terminal)


async def _resume(
    infra: Infra, run: Run, stop: asyncio.Event | None, max_steps: int | None
) -> None:
    if run.attempt > MAX_RUN_ATTEMPTS:
        await _append(
            infra,
            run.id,
            EventType.RUN_FAILED,
            failure_data(
                FailureType.TOO_MANY_ATTEMPTS,
                f"the workers of {run.attempt - 1} attempts stopped before the run ended "
                f"(at most {MAX_RUN_ATTEMPTS}); start a new run to retry",
            ),
        )
        log.warning("run %s ended TooManyAttempts at attempt %d", run.id, run.attempt)
        return
    events = await retried_as_holder(
        run.id, lambda: infra.store.read_events(run.id), "reading the history"
    )
    journal = await retried_as_holder(
        run.id, lambda: infra.store.read_steps(run.id), "reading the journal"
    )
    await _append(
        infra,
        run.id,
        EventType.RUN_RESUMED,
        {"attempt": run.attempt, "resumed_after_seq": run.last_seq},
    )
    log.warning("run %s resumed by attempt %d after seq %d", run.id, run.attempt, run.last_seq)
    terminal = await _run_agent(
        infra,
        run.id,
        run.agent,
        run.input,
        attempt=run.attempt,
        stop=stop,
        max_steps=max_steps,
        replay=Replay(events),
        journal=journal,
    )
    log.info("run %s ended: %s", run.id, terminal)


async def _run_agent(
    infra: Infra,
    run_id: str,
    agent_name: str,
    input: JsonObject,
    *,
    attempt: int,
    stop: asyncio.Event | None,
    max_steps: int | None,
    replay: Replay | None = None,
    journal: list[StepRecord] | None = None,
) -> EventType:
    """Append one RunStep per yield, then the terminal event; returns the terminal type.

    On a resume, yields the previous attempts recorded are compared with the record instead
    (``replay``), and ``ctx`` returns what the ``journal`` holds, until each is exhausted.
    Each step runs in a task that a cancel request or ``stop`` interrupts. Only the agent's own
    errors end the run with RunFailed; store and queue errors propagate.
    """
    # The store's attempt: 1 on the first execution, one more for each take-over.
    ctx = RunContext(infra, run_id=run_id, agent=agent_name, attempt=attempt, journal=journal or ())
    try:
        steps = get_agent(agent_name).start(copy.deepcopy(input), ctx)
    except Exception as error:
        return await _agent_failed(infra, ctx, error)
    steps_taken = 0
    try:
        async with Interruptions(infra, run_id, ctx, stop) as watch:
            while True:
                next_ = await watch.next_step(steps)
                if ctx.divergence is not None:
                    return await _diverged(infra, run_id, ctx.divergence)
                if next_.outcome is Outcome.END:
                    break
                if next_.outcome is Outcome.ERROR:
                    if ctx.store_failure is not None:
                        raise ctx.store_failure  # recording a step failed: a worker error
                    return await _agent_failed(infra, ctx, next_.value)
                if next_.outcome is Outcome.CANCELLED:
                    await ctx.flush()  # what the interrupted step read of ctx.now(), first
                    await _append(infra, run_id, EventType.RUN_CANCELLED, {})
                    return EventType.RUN_CANCELLED
                if next_.outcome is Outcome.STOPPED:
                    await ctx.flush()
                    return await _stopped(infra, run_id, "during the step after seq")
                data = next_.value
                steps_taken += 1
                if max_steps is not None and steps_taken > max_steps:
                    raise DrainDidNotSettle(
                        f"run {run_id!r}: agent {agent_name!r} yielded more than {max_steps} "
                        "steps; an agent that never ends, or raise the limit"
                    )
                if replay is not None and replay.pending:
                    try:
                        data = ensure_json_object(
                            data, f"step data yielded by agent {agent_name!r}"
                        )
                    except InvalidArgument as error:
                        return await _agent_failed(infra, ctx, error)
                    difference = replay.check_yield(data)
                    if difference is not None:
                        return await _diverged(infra, run_id, difference)
                    continue  # recorded already
                await ctx.flush()
                try:
                    await _append(infra, run_id, EventType.RUN_STEP, data)
                except (
                    InvalidArgument
                ) as error:  # the store checks the data once: not JSON, too large
                    return await _agent_failed(infra, ctx, error)
                # The watcher's word, not a read: it sees a push (or its own poll) at once.
                if watch.cancelled:
                    await _append(infra, run_id, EventType.RUN_CANCELLED, {})
                    return EventType.RUN_CANCELLED
                if stop is not None and stop.is_set():
                    return await _stopped(infra, run_id, "after seq")
    finally:
        close = getattr(steps, "aclose", None)  # run the agent's finally blocks when we stop early
        if close is not None:
            await close()
    difference = replay.check_end() if replay is not None else None
    if difference is not None:
        return await _diverged(infra, run_id, difference)
    await ctx.flush()
    # RunCancelled instead where a cancel was requested meanwhile (the store's append rule).
    return EventType((await _append(infra, run_id, EventType.RUN_FINISHED, {})).type)


async def _diverged(infra: Infra, run_id: str, difference: str) -> EventType:
    log.error("run %s: its replay departed from the record at %s", run_id, difference)
    await _append(
        infra,
        run_id,
        EventType.RUN_FAILED,
        failure_data(
            FailureType.NONDETERMINISTIC_REPLAY,
            f"the agent departed from the run's record at {difference}",
        ),
    )
    return EventType.RUN_FAILED


async def _stopped(infra: Infra, run_id: str, when: str) -> EventType:
    last_seq = (await read_as_holder(infra, run_id)).last_seq
    await _append(
        infra,
        run_id,
        EventType.RUN_FAILED,
        failure_data(
            FailureType.WORKER_SHUTDOWN,
            f"the worker was stopped {when} {last_seq}; start a new run to retry",
        ),
    )
    return EventType.RUN_FAILED


async def _agent_failed(infra: Infra, ctx: RunContext, error: BaseException) -> EventType:
    """End the run RunFailed for the agent's own error, logged once with its traceback."""
    step = ctx.step_that_raised(error)
    in_step = f" in step {step!r}" if step is not None else ""
    log.error(
        "run %s: agent %r raised%s: %s: %s",
        ctx.run_id,
        ctx.agent,
        in_step,
        type(error).__name__,
        error,
        exc_info=error,
    )
    data = failure_of(error)
    if step is not None:
        data["step"] = step
        data["message"] = f"step {step!r} failed: {data['message']}"
    await ctx.flush()
    return EventType((await _append(infra, ctx.run_id, EventType.RUN_FAILED, data)).type)


async def _append(
    infra: Infra,
    run_id: str,
    type: EventType,
    data: JsonObject,
    *,
    expected_status: RunStatus | None = None,
) -> RunEvent:
    return await append_as_holder(infra, run_id, type, data, expected_status=expected_status)
