"""Errors raised by agents-run. Every one says what went wrong and what to do about it."""

from __future__ import annotations


class AgentsRunError(Exception):
    """Base class of every error agents-run raises on purpose."""


def _shown(name: str, limit: int = 200) -> str:
    """``name`` quoted for a message, cut where a caller passed something huge."""
    return repr(name) if len(name) <= limit else f"{name[:limit]!r}... ({len(name)} characters)"


class RunNotFound(AgentsRunError, LookupError):
    """No run has this id in the configured store."""

    def __init__(self, run_id: str) -> None:
        super().__init__(
            f"run {_shown(run_id)} not found: check the id (as returned by start_run) and that "
            "this process uses the same store as the one that started it (AGENTS_RUN_STORE_URL)"
        )
        self.run_id = run_id


class UnknownAgent(AgentsRunError, LookupError):
    """No agent is registered under this name."""

    def __init__(self, name: str, known: list[str]) -> None:
        listed = ", ".join(sorted(known)) or "none"
        super().__init__(
            f"unknown agent {_shown(name)} (registered: {listed}); register it with "
            "register_agent(name, fn) in a module that the caller and the worker both import"
        )
        self.name = name


class InvalidArgument(AgentsRunError, ValueError):
    """An argument of a public call is malformed (nothing was persisted or enqueued)."""


class PayloadTooLarge(InvalidArgument):
    """A run's input, an event's data or a step's result is larger, as JSON, than the configured
    limit (``AGENTS_RUN_MAX_PAYLOAD_BYTES``); nothing was persisted or enqueued."""


class InvalidTransition(AgentsRunError):
    """An event would break the run's life cycle (for instance a step after the terminal event)."""


class StaleRunState(AgentsRunError):
    """The run is no longer in the state the caller expected; another party moved it first."""


class StaleAttempt(AgentsRunError):
    """An append came from a worker whose lease on the run lapsed: another attempt holds it.

    The store refuses it (fencing); the worker that gets this drops the run without a word more.
    """


class InfraConfigError(AgentsRunError, ValueError):
    """The configuration names infrastructure in a form agents-run does not accept."""


class InfraUnavailable(AgentsRunError, ConnectionError):
    """A server did not answer within its deadline."""


class StreamIdleTimeout(AgentsRunError, TimeoutError):
    """A stream waited longer than its idle timeout for the run's next event."""


class DrainDidNotSettle(AgentsRunError):
    """run_until_idle reached max_steps while work was still left."""


class StepResultNotJson(AgentsRunError, TypeError):
    """A ``ctx.step`` function returned a value that cannot be recorded as JSON."""


class RunDidNotEnd(AgentsRunError, TimeoutError):
    """wait_for_run's timeout passed before the run's terminal event."""


class ReplayDiverged(AgentsRunError):
    """A resumed run's agent called its context differently from the run's record (the run
    ends ``RunFailed`` ``NondeterministicReplay``)."""


class HistoryEnded(AgentsRunError):
    """A replay that may not go live (``replay_history``, ``agents-run replay``) reached the end
    of the run's record: the agent's next call would run for real, so the replay stops there."""


class NondeterministicReplay(AgentsRunError):
    """Replaying a run's history against the agent's code now departed from the record: the
    code changed in a way that would end runs in flight ``RunFailed`` ``NondeterministicReplay``.
    ``difference`` is the first difference (``seq 2 RunStep data.text: recorded "a", now "b"``)."""

    def __init__(self, run_id: str, agent: str, difference: str) -> None:
        super().__init__(
            f"run {run_id!r} (agent {agent!r}): the agent departed from the run's record at "
            f"{difference}"
        )
        self.run_id = run_id
        self.agent = agent
        self.difference = difference


class InvalidHistory(AgentsRunError, ValueError):
    """A saved run history (``agents-run export``) cannot be read: not JSON, another format or
    version, or fields missing or malformed."""


class ReplayTimedOut(AgentsRunError, TimeoutError):
    """Replaying a history took longer than its timeout: the agent waits on something that is
    not recorded (an await outside ``ctx.step``)."""
