from __future__ import annotations

import pytest

from agents_run import Infra, RunNotFound, cancel_run, run_until_idle, start_run

pytestmark = pytest.mark.deterministic


async def test_a_queued_run_is_cancelled_at_once_and_idempotently(infra: Infra) -> None:
    run_id = await start_run("echo", {"text": "a b"})
    assert await cancel_run(run_id) is True
    assert await cancel_run(run_id) is False
    events = await infra.store.read_events(run_id)
    assert [(e.seq, e.type) for e in events] == [(1, "RunCancelled")]
    await run_until_idle()
    assert [e.type for e in await infra.store.read_events(run_id)] == ["RunCancelled"]


async def test_cancelling_a_finished_run_is_a_no_op(infra: Infra) -> None:
    run_id = await start_run("echo", {"text": "a"})
    await run_until_idle()
    assert await cancel_run(run_id) is False
    assert [e.type for e in await infra.store.read_events(run_id)][-1] == "RunFinished"


async def test_cancelling_an_unknown_run_raises(infra: Infra) -> None:
    with pytest.raises(RunNotFound, match="run 'run-999' not found"):
        await cancel_run("run-999")
