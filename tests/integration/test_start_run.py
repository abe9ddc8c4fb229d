from __future__ import annotations

import pytest

from agents_run import (
    Infra,
    InfraUnavailable,
    InvalidArgument,
    RunStatus,
    UnknownAgent,
    publish_pending_outbox_events_once,
    start_run,
)
from tests.leaks import leaves_work_on_purpose

pytestmark = pytest.mark.deterministic


@leaves_work_on_purpose
async def test_start_run_persists_a_queued_run_and_enqueues_its_job(infra: Infra) -> None:
    run_id = await start_run("echo", {"text": "a b"})
    run = await infra.store.get_run(run_id)
    assert run_id == "run-000001"
    assert (run.agent, run.input, run.status) == ("echo", {"text": "a b"}, RunStatus.QUEUED)
    assert run.created_at == infra.clock.now()
    job = await infra.queue.take_next()
    assert job is not None
    assert job.run_id == run_id


@leaves_work_on_purpose
async def test_run_ids_come_from_the_infra(infra: Infra) -> None:
    assert [await start_run("echo", {}) for _ in range(3)] == [
        "run-000001",
        "run-000002",
        "run-000003",
    ]


@pytest.mark.parametrize(
    ("agent", "run_input", "error", "message"),
    [
        ("nope", {}, UnknownAgent, "unknown agent 'nope' \\(registered: .*echo"),
        ("", {}, InvalidArgument, "agent name must be a non-empty string"),
        ("echo", ["a"], InvalidArgument, "run input must be a JSON object"),
        ("echo", {"when": {1, 2}}, InvalidArgument, r"run input\['when'\] is a set"),
    ],
)
async def test_bad_arguments_persist_and_enqueue_nothing(
    infra: Infra, agent: str, run_input: object, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        await start_run(agent, run_input)  # type: ignore[arg-type]
    assert await infra.store.pending_outbox() == []
    assert (await infra.queue.counts()).total == 0
    assert await infra.queue.take_next() is None


async def test_a_queue_failure_ends_the_persisted_run_and_raises(
    infra: Infra, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def redis_down(run_id: str) -> None:
        raise InfraUnavailable("Redis at redis://queue:6379 did not answer")

    monkeypatch.setattr(infra.queue, "enqueue", redis_down)
    with pytest.raises(InfraUnavailable, match="did not answer"):
        await start_run("echo", {"text": "a"})
    (run_id,) = [row.event.run_id for row in await infra.store.pending_outbox()]
    events = await infra.store.read_events(run_id)
    assert [(e.type, e.data["error_type"]) for e in events] == [("RunFailed", "EnqueueFailed")]
    assert await publish_pending_outbox_events_once() == 1  # streams learn that it ended
