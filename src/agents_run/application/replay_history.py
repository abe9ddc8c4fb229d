"""Replay a run's history against the agent code installed now, writing nothing (``agents-run
replay``, and saved histories in CI): the resume's replay (``Replay`` for the yields,
``RunContext`` for the journal) without going live where the record ends.

The agent runs on a private in-memory infra, so nothing reaches the store, the queue or the bus
the history came from; a call past the journal stops the replay instead of running ``fn``.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any

from agents_run.application.agents import get_agent
from agents_run.application.infra import Infra, get_infra, use_infra
from agents_run.application.replay import Replay
from agents_run.application.run_context import RunContext
from agents_run.arguments import require_seconds
from agents_run.domain.differences import difference_line, short
from agents_run.domain.events import EventType, RunEvent
from agents_run.domain.history import RunHistory
from agents_run.domain.json_data import ensure_json_object
from agents_run.errors import (
    InvalidArgument,
    InvalidHistory,
    NondeterministicReplay,
    ReplayTimedOut,
)

DEFAULT_REPLAY_TIMEOUT = 60.0
HistorySource = RunHistory | Mapping[str, Any] | str | PathLike[str]


@dataclass(frozen=True)
class ReplayReport:
    """What a replay reproduced: ``steps`` RunSteps and ``calls`` journal entries, and whether
    up to the run's own end (``complete``) or to where its record stops."""

    run_id: str
    agent: str
    steps: int
    calls: int
    complete: bool
    end: str

    def summary(self) -> str:
        """One line, as ``agents-run replay`` prints it."""
        steps = f"{self.steps} RunStep{'' if self.steps == 1 else 's'}"
        calls = f"{self.calls} recorded call{'' if self.calls == 1 else 's'}"
        reach = "to its end" if self.complete else "up to where its record stops"
        head = f"run {self.run_id} (agent {self.agent}) reproduced {reach}"
        return f"{head}: {steps}, {calls} ({self.end})"


async def read_history(run_id: str) -> RunHistory:
    """The history of run ``run_id`` as the current infra's store holds it (reads only)."""
    store = get_infra().store
    run = await store.get_run(run_id)
    return RunHistory.of(run, await store.read_events(run_id), await store.read_steps(run_id))


def load_history(source: HistorySource) -> RunHistory:
    """A history from a file ``agents-run export`` wrote, its parsed JSON, or a ``RunHistory``;
    raises ``InvalidHistory`` saying what is wrong."""
    if isinstance(source, RunHistory):
        return source
    if isinstance(source, Mapping):
        return RunHistory.from_json(dict(source))
    path = Path(source)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidHistory(f"cannot read run history {str(path)!r}: {error}") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidHistory(f"run history {str(path)!r} is not JSON: {error}") from None
    try:
        return RunHistory.from_json(document)
    except InvalidHistory as error:
        raise InvalidHistory(f"{path}: {error}") from None


async def replay_history(
    source: HistorySource, *, timeout: float = DEFAULT_REPLAY_TIMEOUT
) -> ReplayReport:
    """Replay a run's history against the agent registered under its name now.

    Returns what was reproduced; raises ``NondeterministicReplay`` with the first difference
    where the agent departs from the record (a resumed run would end ``RunFailed``
    ``NondeterministicReplay``), ``UnknownAgent``, ``InvalidHistory``, or ``ReplayTimedOut``
    after ``timeout`` seconds. Writes nothing anywhere.
    """
    require_seconds(timeout, "timeout")
    history = load_history(source)
    agent = get_agent(history.agent)
    private = Infra.in_memory()  # what agent code reaches through get_infra() meanwhile
    ctx = RunContext(
        private,
        run_id=history.run_id,
        agent=history.agent,
        attempt=history.attempt + 1,  # as the next worker to take it over would see it
        journal=history.steps,
        live=False,
    )
    replay = Replay(list(history.events))
    with use_infra(private):
        steps = agent.start(copy.deepcopy(history.input), ctx)
        try:
            async with asyncio.timeout(timeout):
                outcome = await _drive(history, replay, ctx, steps)
        except TimeoutError:
            raise ReplayTimedOut(
                f"replaying run {history.run_id!r} took over {timeout:g}s: agent "
                f"{history.agent!r} waits on something its record does not hold"
            ) from None
        finally:
            close = getattr(steps, "aclose", None)
            if close is not None:
                await close()
    if outcome is not None:
        raise NondeterministicReplay(history.run_id, history.agent, outcome)
    replayed = len(history.steps) - len(ctx.journal_left)
    return ReplayReport(
        history.run_id, history.agent, replay.replayed, replayed, history.complete, _end(history)
    )


async def _drive(history: RunHistory, replay: Replay, ctx: RunContext, steps: Any) -> str | None:
    """Run the agent against the record; the first difference, or None where it agrees."""
    while True:
        value: object = None
        raised: Exception | None = None
        ended = False
        try:
            value = await anext(steps)
        except StopAsyncIteration:
            ended = True
        except Exception as error:
            raised = error
        if ctx.divergence is not None:
            return ctx.divergence
        if ctx.history_ended is not None:
            return _past_journal(history, replay, ctx)
        if ended:
            return _ended(history, replay, ctx)
        if raised is None:
            try:
                data = ensure_json_object(value, f"step data yielded by agent {ctx.agent!r}")
            except InvalidArgument as error:
                raised = error
        if raised is not None:
            return _raised(history, replay, raised)
        if replay.pending:
            difference = replay.check_yield(data)
            if difference is not None:
                return difference
            continue
        terminal = history.terminal
        if history.complete and terminal is not None:
            return f"seq {terminal.seq}: recorded {terminal.type}, now RunStep {short(data)}"
        return None  # the record stops here: what follows would be live


def _past_journal(history: RunHistory, replay: Replay, ctx: RunContext) -> str | None:
    """Where the agent called its context past the journal: fine where the record stops there
    (or the run failed in that very step), else the difference."""
    assert ctx.history_ended is not None
    kind, name = ctx.history_ended
    # Steps recorded after the journal's last entry were yielded without a call in between.
    difference = replay.check_end(f"{kind.value} {short(name)}, past the end of the journal")
    if difference is not None:
        return difference
    terminal = history.terminal
    if not history.complete or terminal is None:
        return None
    if terminal.type == EventType.RUN_FAILED and terminal.data.get("step") == name:
        return None  # the step's fn failed then; it is not called again here
    return (
        f"journal entry {len(history.steps) + 1}: recorded nothing more (the run ended at seq "
        f"{terminal.seq} {terminal.type}), now {kind.value} {short(name)}"
    )


def _ended(history: RunHistory, replay: Replay, ctx: RunContext) -> str | None:
    difference = replay.check_end()
    if difference is not None or not history.complete:
        return difference
    left = ctx.journal_left
    if left:
        return (
            f"journal entry {left[0].index}: recorded {left[0].kind.value} "
            f"{short(left[0].name)}, now the agent ended"
        )
    terminal = _terminal(history)
    if terminal.type == EventType.RUN_FAILED:
        recorded = f"RunFailed {terminal.data.get('error_type')}"
        return f"seq {terminal.seq}: recorded {recorded}, now the agent finished"
    return None


def _raised(history: RunHistory, replay: Replay, error: Exception) -> str | None:
    raised = f"the agent raised {type(error).__name__}: {short(str(error))}"
    difference = replay.check_end(raised)
    if difference is not None or not history.complete:
        return difference
    terminal = _terminal(history)
    if terminal.type != EventType.RUN_FAILED:
        return f"seq {terminal.seq}: recorded {terminal.type}, now {raised}"
    recorded = {"error_type": terminal.data.get("error_type")}
    now = {"error_type": type(error).__name__}
    if recorded == now:
        return None
    return difference_line(f"seq {terminal.seq} RunFailed", recorded, now, prefix="data")


def _terminal(history: RunHistory) -> RunEvent:
    terminal = history.terminal
    assert terminal is not None  # a complete history ends with its terminal event
    return terminal


def _end(history: RunHistory) -> str:
    terminal = history.terminal
    if terminal is None:
        return f"the run is {history.status.value}, last seq {len(history.events)}"
    if terminal.type == EventType.RUN_FAILED:
        return f"{terminal.type} {terminal.data.get('error_type')} at seq {terminal.seq}"
    return f"{terminal.type} at seq {terminal.seq}"
