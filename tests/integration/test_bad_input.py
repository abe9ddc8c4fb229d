"""Bad input everywhere: every public function and command refuses it with a named error,
within a deadline, shows no secret, and persists or enqueues nothing. The HTTP endpoints have
their table in test_bad_http_input.py."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from agents_run import (
    AgentsRunError,
    Infra,
    cancel_run,
    drain_outbox_for_run,
    set_infra,
    start_run,
    stream_run,
    use_infra,
)
from agents_run.config import load_infra_from_config, read_config
from agents_run.entrypoints.cli import main
from agents_run.ports import QueueCounts

pytestmark = pytest.mark.deterministic

DEADLINE = 10.0  # a guard against a hang, far above what any refusal takes
SECRET = "s3cret"
NAMED = (AgentsRunError, TypeError, ValueError)


async def _events(run_id: Any, **options: Any) -> None:
    async for _ in stream_run(run_id, **options):
        pass


def _call(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Callable[[], Awaitable[Any]]:
    async def call() -> Any:
        result = function(*args, **kwargs)
        return await result if isinstance(result, Awaitable) else result

    return call


class _NotJson:
    pass


FUNCTION_CASES: dict[str, Callable[[], Awaitable[Any]]] = {
    # start_run: the agent
    "start_run agent None": _call(start_run, None, {}),
    "start_run agent int": _call(start_run, 1, {}),
    "start_run agent empty": _call(start_run, "", {}),
    "start_run agent huge": _call(start_run, "a" * 100_000, {}),
    "start_run agent unknown": _call(start_run, "no-such-agent", {}),
    "start_run agent bytes": _call(start_run, b"echo", {}),
    "start_run agent list": _call(start_run, ["echo"], {}),
    # start_run: the input
    "start_run huge unknown agent": _call(start_run, "a" * 100_000, {}),
    "start_run input None": _call(start_run, "echo", None),
    "start_run input str": _call(start_run, "echo", '{"text": "a"}'),
    "start_run input list": _call(start_run, "echo", ["a"]),
    "start_run input object": _call(start_run, "echo", {"text": _NotJson()}),
    "start_run input nan": _call(start_run, "echo", {"text": float("nan")}),
    "start_run input inf": _call(start_run, "echo", {"text": float("inf")}),
    "start_run input int key": _call(start_run, "echo", {1: "a"}),
    "start_run input bytes": _call(start_run, "echo", {"text": b"a"}),
    "start_run input set": _call(start_run, "echo", {"text": {1, 2}}),
    "start_run input tuple key": _call(start_run, "echo", {(1,): "a"}),
    "start_run input over the payload limit": _call(start_run, "echo", {"text": "x" * 2**20}),
    # stream_run
    "stream_run unknown id": _call(_events, "run-nope"),
    "stream_run empty id": _call(_events, ""),
    "stream_run huge id": _call(_events, "r" * 100_000),
    "stream_run from_seq 0": _call(_events, "run-nope", from_seq=0),
    "stream_run from_seq -1": _call(_events, "run-nope", from_seq=-1),
    "stream_run from_seq str": _call(_events, "run-nope", from_seq="1"),
    "stream_run from_seq float": _call(_events, "run-nope", from_seq=1.5),
    "stream_run from_seq bool": _call(_events, "run-nope", from_seq=True),
    "stream_run idle_timeout 0": _call(_events, "run-nope", idle_timeout=0),
    "stream_run idle_timeout -1": _call(_events, "run-nope", idle_timeout=-1),
    "stream_run idle_timeout str": _call(_events, "run-nope", idle_timeout="1"),
    "stream_run idle_timeout nan": _call(_events, "run-nope", idle_timeout=float("nan")),
    "stream_run idle_timeout inf": _call(_events, "run-nope", idle_timeout=float("inf")),
    "stream_run poll_interval 0": _call(_events, "run-nope", poll_interval=0),
    "stream_run poll_interval -1": _call(_events, "run-nope", poll_interval=-1),
    "stream_run poll_interval nan": _call(_events, "run-nope", poll_interval=float("nan")),
    # cancel_run, drain_outbox_for_run
    "cancel_run unknown id": _call(cancel_run, "run-nope"),
    "cancel_run empty id": _call(cancel_run, ""),
    "cancel_run huge id": _call(cancel_run, "r" * 100_000),
    "drain_outbox_for_run unknown id": _call(drain_outbox_for_run, "run-nope"),
    "drain_outbox_for_run empty id": _call(drain_outbox_for_run, ""),
    # the infra seam
    "set_infra None": _call(set_infra, None),
    "set_infra a URL": _call(set_infra, "memory://"),
    "use_infra object": _call(lambda: use_infra(object()).__enter__()),  # type: ignore[arg-type]
    # configuration
    "config unknown store scheme": _call(read_config, {"AGENTS_RUN_STORE_URL": "mysql://db/x"}),
    "config bus not a URL": _call(read_config, {"AGENTS_RUN_BUS_URL": "nope"}),
    "config queue on postgres": _call(
        read_config, {"AGENTS_RUN_QUEUE_URL": f"postgresql://u:{SECRET}@db/x"}
    ),
    "config bad key prefix": _call(read_config, {"AGENTS_RUN_KEY_PREFIX": "a b"}),
    "config huge key prefix": _call(read_config, {"AGENTS_RUN_KEY_PREFIX": "a" * 1000}),
    "config bad schema, password": _call(
        load_infra_from_config,
        {"AGENTS_RUN_STORE_URL": f"postgresql://u:{SECRET}@db/x?schema=Bad-1"},
    ),
    "config sqlite without a file": _call(
        load_infra_from_config, {"AGENTS_RUN_STORE_URL": "sqlite://"}
    ),
    "config lease seconds negative": _call(read_config, {"AGENTS_RUN_LEASE_SECONDS": "-1"}),
    "config lease seconds not a number": _call(read_config, {"AGENTS_RUN_LEASE_SECONDS": "x"}),
    "config payload limit too small": _call(read_config, {"AGENTS_RUN_MAX_PAYLOAD_BYTES": "10"}),
    "config payload limit not a number": _call(
        read_config, {"AGENTS_RUN_MAX_PAYLOAD_BYTES": "1 MiB"}
    ),
}


async def _nothing_stored(infra: Infra) -> None:
    assert await infra.store.count_pending_outbox() == 0
    assert await infra.queue.counts() == QueueCounts(waiting=0, active=0)


@pytest.mark.parametrize("case", list(FUNCTION_CASES))
async def test_a_function_refuses_bad_input_with_a_named_error(infra: Infra, case: str) -> None:
    with pytest.raises(NAMED) as raised:
        async with asyncio.timeout(DEADLINE):
            await FUNCTION_CASES[case]()
    assert SECRET not in str(raised.value)
    assert str(raised.value)  # says what was wrong
    assert len(str(raised.value)) < 2000  # and does not echo a huge value back
    await _nothing_stored(infra)


CLI_CASES: dict[str, list[str]] = {
    "start unknown agent": ["start", "no-such-agent"],
    "start input not JSON": ["start", "echo", "--input", "{not json"],
    "start input a list": ["start", "echo", "--input", "[1]"],
    "start input a string": ["start", "echo", "--input", '"a"'],
    "start input NaN": ["start", "echo", "--input", '{"a": NaN}'],
    "start input over the payload limit": [
        "start",
        "echo",
        "--input",
        '{"a": "%s"}' % ("x" * 2**20),
    ],
    "tail unknown run": ["tail", "run-nope"],
    "tail from-seq 0": ["tail", "run-nope", "--from-seq", "0"],
    "tail from-seq not a number": ["tail", "run-nope", "--from-seq", "x"],
    "tail idle-timeout negative": ["tail", "run-nope", "--idle-timeout", "-1"],
    "cancel unknown run": ["cancel", "run-nope"],
    "cancel no run": ["cancel"],
    "worker concurrency 0": ["worker", "--concurrency", "0"],
    "worker lease seconds negative": ["worker", "--lease-seconds", "-1"],
    "unknown command": ["frobnicate"],
    "no command": [],
}


@pytest.mark.parametrize("case", list(CLI_CASES))
def test_a_command_refuses_bad_input_with_an_error_exit_and_a_message(
    case: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTS_RUN_STORE_URL", "memory://")
    try:
        code = main(CLI_CASES[case])
    except SystemExit as exit_:  # argparse's own refusals
        code = exit_.code if isinstance(exit_.code, int) else 1
        message = exit_.code if isinstance(exit_.code, str) else ""
    else:
        message = ""
    captured = capsys.readouterr()
    assert code == 2  # bad usage or input, whoever refuses it (argparse or agents-run)
    assert (captured.err + message).strip()
    assert SECRET not in captured.err + message
    assert captured.out == ""  # no run id printed: nothing started
