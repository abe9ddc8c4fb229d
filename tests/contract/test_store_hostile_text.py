"""Every store keeps text verbatim that looks like SQL, a placeholder or an escape: its
statements are parameterised, so a value is never read as part of one. Text no store can keep
(a NUL character, which PostgreSQL refuses) is refused alike, with a named error, up front."""

from __future__ import annotations

import pytest

from agents_run import RunNotFound, RunStatus
from agents_run.domain.journal import StepKind, StepRecord
from agents_run.errors import InvalidArgument
from agents_run.ports import RunStorePort
from tests.contract.test_store_contract import AT, new_run

HOSTILE = [
    "x'); DROP TABLE runs; --",
    "' OR '1'='1",
    '"; DELETE FROM events; --',
    "%s %(run_id)s {s} {} $1 ?",
    "\\x00 \\' \\\\ \\n",
    "über 🦜 \u202e \ufeff",
    "-- comment /* block */",
]


async def test_hostile_text_is_stored_and_read_back_verbatim(store: RunStorePort) -> None:
    for text in HOSTILE:
        await _stored_and_read_back(store, text)


async def _stored_and_read_back(store: RunStorePort, text: str) -> None:
    run = new_run(agent=text, input={text: text, "list": [text]})
    await store.create_run(run)
    await store.append_event(run.id, "RunStarted", {}, at=AT)
    await store.append_event(run.id, "RunStep", {"text": text, text: [text]}, at=AT)
    await store.record_step(
        StepRecord(run.id, 1, 1, StepKind.STEP, name=text, result={"echo": text})
    )
    stored = await store.get_run(run.id)
    assert (stored.agent, stored.input) == (text, {text: text, "list": [text]})
    (step_event,) = await store.read_events(run.id, 2)
    assert step_event.data == {"text": text, text: [text]}
    (record,) = await store.read_steps(run.id)
    assert (record.name, record.result) == (text, {"echo": text})
    other = new_run()  # the tables are intact and still take other runs
    await store.create_run(other)
    assert (await store.get_run(other.id)).status is RunStatus.QUEUED
    assert len(await store.read_events(run.id)) == 2


async def test_a_nul_character_is_refused_alike_before_anything_is_written(
    store: RunStorePort,
) -> None:
    for where in ["input value", "input key", "event value", "event key"]:
        await _refused(store, where)


async def _refused(store: RunStorePort, where: str) -> None:
    nul = "a\x00b"
    run = new_run(
        input={"x": nul} if where == "input value" else {nul: 1} if where == "input key" else {}
    )
    if where.startswith("input"):
        with pytest.raises(InvalidArgument, match="NUL"):
            await store.create_run(run)
        with pytest.raises(RunNotFound):
            await store.get_run(run.id)
        return
    await store.create_run(run)
    await store.append_event(run.id, "RunStarted", {}, at=AT)
    data = {"x": nul} if where == "event value" else {nul: 1}
    with pytest.raises(InvalidArgument, match="NUL"):
        await store.append_event(run.id, "RunStep", data, at=AT)
    assert [e.seq for e in await store.read_events(run.id)] == [1]
