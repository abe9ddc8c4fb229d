"""Real payloads of the bus and the queue against the wire format's JSON Schemas (docs/schemas/):
what a Node or browser client may rely on."""

from __future__ import annotations

import asyncio
import fcntl
import json
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from bullmq import Queue
from redis.asyncio import Redis

from agents_run import (
    EventType,
    Infra,
    InMemoryRunStore,
    cancel_run,
    register_agent,
    run_until_idle,
    start_run,
)
from agents_run.adapters.bullmq_queue import BullMQQueue
from agents_run.adapters.redis_bus import RedisEventBus, channel_name
from agents_run.application.infra import use_infra
from agents_run.domain.events import Run, RunStatus
from agents_run.domain.json_data import JsonObject
from tests.services import (
    REQUIRE_SERVICES,
    delete_redis_keys,
    redis_url,
    services_required,
    unique_prefix,
)
from tests.wire_format import EVENT_SCHEMA, JOB_SCHEMA, violations

pytestmark = pytest.mark.deterministic

DEADLINE = 10.0
NODE_PROJECT = Path(__file__).resolve().parent.parent / "node"


@pytest.fixture
async def redis_infra() -> AsyncIterator[Infra]:
    url = redis_url()
    prefix = unique_prefix("wire")
    infra = Infra(
        bus=RedisEventBus(url, key_prefix=prefix, connect_timeout=2.0),
        queue=BullMQQueue(url, key_prefix=prefix, connect_timeout=2.0),
        store=InMemoryRunStore(),
    )
    with use_infra(infra):
        yield infra
    await infra.aclose()
    await delete_redis_keys(url, prefix)


async def raw_payloads(bus: RedisEventBus, run_ids: list[str], count: int) -> list[object]:
    """What a raw subscriber (redis-cli, ioredis) reads on the runs' channels: ``count`` of it."""
    client = Redis.from_url(bus.url)
    pubsub = client.pubsub()
    try:
        await pubsub.subscribe(*(channel_name(bus.key_prefix, run_id) for run_id in run_ids))
        payloads: list[object] = []
        async with asyncio.timeout(DEADLINE):
            await run_until_idle()
            while len(payloads) < count:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message is not None:
                    payloads.append(json.loads(message["data"]))
        return payloads
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await client.aclose()


def test_the_schemas_are_valid_and_reject_what_breaks_the_rules() -> None:
    assert violations(EVENT_SCHEMA, {"run_id": "r", "seq": 1, "type": "RunStep", "data": {}}) == []
    assert violations(EVENT_SCHEMA, {"run_id": "r", "seq": 0, "type": "RunStep", "data": {}})
    assert violations(EVENT_SCHEMA, {"run_id": "r", "seq": 1, "type": "RunFailed", "data": {}})
    assert violations(JOB_SCHEMA, {"name": "run", "data": {"run_id": "a:b"}, "opts": {}})
    resumed = {"attempt": 2, "resumed_after_seq": 3}
    assert (
        violations(EVENT_SCHEMA, {"run_id": "r", "seq": 4, "type": "RunResumed", "data": resumed})
        == []
    )
    assert violations(EVENT_SCHEMA, {"run_id": "r", "seq": 4, "type": "RunResumed", "data": {}})


def test_the_event_schema_names_every_event_type() -> None:
    schema = json.loads(
        (Path(__file__).resolve().parents[2] / "docs/schemas" / EVENT_SCHEMA).read_text()
    )
    assert schema["properties"]["type"]["enum"] == [str(t) for t in EventType]


async def test_every_event_published_on_the_bus_matches_the_event_schema(
    redis_infra: Infra,
) -> None:
    @register_agent("fails-at-once")
    async def fails(input: JsonObject) -> AsyncIterator[JsonObject]:
        if not input.get("succeed"):
            raise ValueError("no")
        yield {}

    assert isinstance(redis_infra.bus, RedisEventBus)
    runs = [
        await start_run("echo", {"text": "é ✓ 1.5"}),
        await start_run("fails-at-once", {}),
        await start_run("echo", {"text": "never"}),
    ]
    assert await cancel_run(runs[2]) is True
    payloads = await raw_payloads(redis_infra.bus, runs, count=5 + 2 + 1)

    assert {payload["type"] for payload in payloads} == {  # type: ignore[index]
        "RunStarted",
        "RunStep",
        "RunFinished",
        "RunFailed",
        "RunCancelled",
    }
    assert [violations(EVENT_SCHEMA, payload) for payload in payloads] == [[]] * len(payloads)


async def test_the_job_the_queue_adds_matches_the_job_schema(redis_infra: Infra) -> None:
    queue = redis_infra.queue
    assert isinstance(queue, BullMQQueue)
    run_id = await start_run("echo", {"text": "a"})

    inspector = Queue(queue.name, {"connection": redis_url(), "prefix": queue.key_prefix})
    try:
        job = await inspector.getJob(run_id)
    finally:
        await inspector.close()
    assert violations(JOB_SCHEMA, {"name": job.name, "data": job.data, "opts": job.opts}) == []
    await run_until_idle()


def node_with_bullmq() -> str:
    """The ``node`` executable, with tests/node's packages installed (``npm ci`` where missing);
    skips where node or npm is absent, or fails where the services are required (CI)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        reason = "the Node interop test needs node and npm on the PATH"
        if services_required():
            pytest.fail(f"{reason}, and {REQUIRE_SERVICES}=1 requires it", pytrace=False)
        pytest.skip(reason)
    # Repeats of this test may run at once on two xdist workers: one installs, the other waits.
    with (NODE_PROJECT / "package.json").open("rb") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)
        if not (NODE_PROJECT / "node_modules" / "bullmq").is_dir():
            subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund"], cwd=NODE_PROJECT, check=True, timeout=300
            )
    return node


async def test_a_run_a_node_service_enqueues_runs_on_the_python_worker_and_node_reads_it(
    redis_infra: Infra,
) -> None:
    node = node_with_bullmq()
    bus = redis_infra.bus
    assert isinstance(bus, RedisEventBus)
    now = redis_infra.clock.now()
    run = Run(
        id=redis_infra.ids.new_run_id(),
        agent="echo",
        input={"text": "from node"},
        status=RunStatus.QUEUED,
        created_at=now,
        updated_at=now,
    )
    await redis_infra.store.create_run(run)  # the run exists; a Node service adds its job

    follower = await asyncio.create_subprocess_exec(
        node,
        str(NODE_PROJECT / "enqueue_and_follow.mjs"),
        bus.url,
        bus.key_prefix,
        run.id,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(DEADLINE * 2):
            assert follower.stdout is not None
            added = await follower.stdout.readline()  # once it is subscribed and the job added
            assert added, (await follower.communicate())[1].decode()
            await run_until_idle()
            output, errors = await follower.communicate()
    finally:
        if follower.returncode is None:
            follower.kill()
            await follower.wait()
    assert follower.returncode == 0, errors.decode()

    assert json.loads(added)["job_id"] != run.id  # BullMQ's own id: the data names the run
    received = [json.loads(line) for line in output.splitlines()]
    stored = [event.to_json() for event in await redis_infra.store.read_events(run.id)]
    assert received == stored
    assert [event["type"] for event in received] == [
        "RunStarted",
        "RunStep",
        "RunStep",
        "RunFinished",
    ]
    assert [violations(EVENT_SCHEMA, event) for event in received] == [[]] * 4
