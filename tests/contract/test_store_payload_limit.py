"""Every RunStorePort adapter refuses a run input, event data or step result over its payload
limit (1 MiB of JSON by default) with ``PayloadTooLarge``, and keeps nothing of it."""

from __future__ import annotations

import pytest

from agents_run import PayloadTooLarge, RunNotFound
from agents_run.domain.json_data import DEFAULT_MAX_PAYLOAD_BYTES
from agents_run.ports import RunStorePort
from tests.contract.test_journal_contract import step
from tests.contract.test_store_contract import AT, new_run, started_run

# One byte over the limit once quoted: {"text":"..."} adds 11 bytes.
OVER = {"text": "x" * (DEFAULT_MAX_PAYLOAD_BYTES - 10)}
AT_THE_LIMIT = {"text": "x" * (DEFAULT_MAX_PAYLOAD_BYTES - 11)}


async def test_a_run_input_over_the_limit_is_refused_and_not_stored(store: RunStorePort) -> None:
    run = new_run(input=OVER)
    with pytest.raises(PayloadTooLarge, match=r"run input is 1048577 bytes as JSON, over the"):
        await store.create_run(run)
    with pytest.raises(RunNotFound):
        await store.get_run(run.id)


async def test_event_data_over_the_limit_is_refused_and_nothing_is_appended(
    store: RunStorePort,
) -> None:
    run = await started_run(store)
    with pytest.raises(PayloadTooLarge, match="data of RunStep event is 1048577 bytes"):
        await store.append_event(run.id, "RunStep", OVER, at=AT)
    assert (await store.get_run(run.id)).last_seq == 1
    assert [row.event.seq for row in await store.pending_outbox(run.id)] == [1]
    appended = await store.append_event(run.id, "RunStep", AT_THE_LIMIT, at=AT)
    assert appended.seq == 2  # exactly at the limit is accepted


async def test_a_step_result_over_the_limit_is_refused_and_not_recorded(
    store: RunStorePort,
) -> None:
    run = await started_run(store)
    with pytest.raises(PayloadTooLarge, match="the result of step 'step 1' is 1048577 bytes"):
        await store.record_step(step(run.id, 1, OVER))
    assert await store.read_steps(run.id) == []
    await store.record_step(step(run.id, 1, "small"))  # the index is still free
