from __future__ import annotations

from contextlib import suppress

from agents_run.application.agents import check_agent_name, get_agent
from agents_run.application.infra import get_infra
from agents_run.domain.events import EventType, Run, RunStatus
from agents_run.domain.failures import FailureType, failure_data
from agents_run.domain.json_data import ensure_json_object


async def start_run(agent: str, input: dict[str, object]) -> str:
    """Check the agent and input, persist the run, enqueue its job; return the run id.

    Nothing is persisted or enqueued where the agent is unknown or the input is not JSON. Where
    the queue fails after the run was persisted, the run ends ``RunFailed`` (``EnqueueFailed``)
    and the error is raised.
    """
    check_agent_name(agent)
    get_agent(agent)
    run_input = ensure_json_object(input, "run input")
    infra = get_infra()
    now = infra.clock.now()
    run = Run(
        id=infra.ids.new_run_id(),
        agent=agent,
        input=run_input,
        status=RunStatus.QUEUED,
        created_at=now,
        updated_at=now,
    )
    await infra.store.create_run(run)
    try:
        await infra.queue.enqueue(run.id)
    except Exception as error:
        # The caller gets the error; the run must not wait for a job that does not exist.
        with suppress(Exception):
            await infra.store.append_event(
                run.id,
                EventType.RUN_FAILED,
                failure_data(FailureType.ENQUEUE_FAILED, f"{type(error).__name__}: {error}"),
                at=infra.clock.now(),
            )
        raise
    return run.id
