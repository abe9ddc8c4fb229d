"""agents-run: agent runs behind one infrastructure seam, ``get_infra()``."""

from agents_run.adapters.memory import InMemoryEventBus, InMemoryQueue, InMemoryRunStore
from agents_run.application.agents import register_agent, restoring_agents
from agents_run.application.cancel_run import cancel_run
from agents_run.application.infra import Infra, get_infra, reset_infra, set_infra, use_infra
from agents_run.application.outbox_publisher import (
    drain_outbox_for_run,
    publish_pending_outbox_events_once,
)
from agents_run.application.replay_history import ReplayReport, load_history, replay_history
from agents_run.application.run_context import RetryPolicy, RunContext
from agents_run.application.run_until_idle import run_until_idle
from agents_run.application.run_worker import run_worker_once
from agents_run.application.running_worker import running_worker, wait_for_run
from agents_run.application.start_run import start_run
from agents_run.application.stream_run import stream_run
from agents_run.application.sweep_runs import sweep_orphaned_runs
from agents_run.config import load_infra_from_config
from agents_run.domain.events import EventType, RunEvent, RunStatus
from agents_run.domain.failures import FailureType
from agents_run.domain.history import RunHistory
from agents_run.errors import (
    AgentsRunError,
    DrainDidNotSettle,
    InfraConfigError,
    InfraUnavailable,
    InvalidArgument,
    InvalidHistory,
    NondeterministicReplay,
    PayloadTooLarge,
    ReplayTimedOut,
    RunDidNotEnd,
    RunNotFound,
    StepResultNotJson,
    StreamIdleTimeout,
    UnknownAgent,
)
from agents_run.ids_and_time import ManualClock, SequentialIds
from agents_run.ports import EventBusPort, QueuePort, RunStorePort

__all__ = [
    "AgentsRunError",
    "DrainDidNotSettle",
    "EventBusPort",
    "EventType",
    "FailureType",
    "InMemoryEventBus",
    "InMemoryQueue",
    "InMemoryRunStore",
    "Infra",
    "InfraConfigError",
    "InfraUnavailable",
    "InvalidArgument",
    "InvalidHistory",
    "ManualClock",
    "NondeterministicReplay",
    "PayloadTooLarge",
    "QueuePort",
    "ReplayReport",
    "ReplayTimedOut",
    "RetryPolicy",
    "RunContext",
    "RunDidNotEnd",
    "RunEvent",
    "RunHistory",
    "RunNotFound",
    "RunStatus",
    "RunStorePort",
    "SequentialIds",
    "StepResultNotJson",
    "StreamIdleTimeout",
    "UnknownAgent",
    "cancel_run",
    "drain_outbox_for_run",
    "get_infra",
    "load_history",
    "load_infra_from_config",
    "publish_pending_outbox_events_once",
    "register_agent",
    "replay_history",
    "reset_infra",
    "restoring_agents",
    "run_until_idle",
    "run_worker_once",
    "running_worker",
    "set_infra",
    "start_run",
    "stream_run",
    "sweep_orphaned_runs",
    "use_infra",
    "wait_for_run",
]
