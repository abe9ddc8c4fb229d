"""What the ``infra`` fixture does (plugin.py declares it): make the test's infra, record it,
and after the test check what it left behind, close it and reset the seam.

Imported by the first test that asks for infra, not at pytest's start-up: it brings in all of
agents_run.
"""

from __future__ import annotations

import asyncio
import copy
import os
import warnings
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from agents_run import (
    Infra,
    InMemoryEventBus,
    InMemoryQueue,
    InMemoryRunStore,
    reset_infra,
    set_infra,
)
from agents_run.config import (
    BUS_URL,
    QUEUE_URL,
    STORE_URL,
    InfraConfig,
    build_infra,
    create_namespace,
    isolated,
    read_config,
    remove_namespace,
)
from agents_run.errors import InfraConfigError
from pytest_agents_run import golden
from pytest_agents_run.determinism import trace_json
from pytest_agents_run.deterministic_infra import with_test_ids_and_clock
from pytest_agents_run.leaks import InfraLeakWarning, find_leaks
from pytest_agents_run.loops import LoopBoundCleanup, SpareLoop
from pytest_agents_run.recording import Trace, TraceEntry, recording_infra
from pytest_agents_run.session import (
    MARKER,
    NAMESPACE_PROPERTY,
    fresh_namespace,
    phase_reports_key,
    settings_key,
    spare_loop_key,
    trace_key,
)

# Closing the infra asks its adapters; a networked one that does not answer must not hang pytest.
TEARDOWN_TIMEOUT = 30.0
# Closing these untouched does nothing: a test that never called a port skips the cleanup.
_IN_MEMORY = (InMemoryEventBus, InMemoryQueue, InMemoryRunStore)


def fresh_infra(request: pytest.FixtureRequest) -> Iterator[Infra]:
    """The ``infra`` fixture's body (see its docstring in plugin.py)."""
    item = request.node
    settings = item.config.stash[settings_key]
    made = item.ihook.pytest_agents_run_make_infra(request=request)
    if not isinstance(made, Infra):
        raise TypeError(
            "pytest_agents_run_make_infra must return an agents_run.Infra, "
            f"got {type(made).__name__}"
        )
    made = with_test_ids_and_clock(made)
    trace = Trace()
    # Closed on the loop its ports ran on, which has usually ended by the teardown (loops.py).
    # A test that called no port left nothing behind: its cleanup only closes the adapters.
    closing = LoopBoundCleanup(
        lambda: _close(recorded, check_leaks=closing.loop is not None),
        timeout=TEARDOWN_TIMEOUT,
        single_loop=settings.services is not None,
        spare=item.config.stash.setdefault(spare_loop_key, SpareLoop()),
    )
    recorded = recording_infra(made, trace, closing.bind)
    set_infra(recorded)
    yield recorded
    check_leaks = all(report.passed for report in item.stash.get(phase_reports_key, []))
    try:
        untouched = closing.loop is None
        if untouched and all(
            type(part) in _IN_MEMORY for part in (made.bus, made.queue, made.store)
        ):
            closed = _Closed([], None)
        else:
            closed = closing.result()
    finally:
        reset_infra()
    if item.get_closest_marker(MARKER) is not None or golden.uses_golden(item):
        # Here rather than at report time: a normalise hook that raises fails this teardown.
        item.stash[trace_key] = _normalized(item, trace.entries)
    if check_leaks:
        if closed.leak_check_error is not None:
            raise closed.leak_check_error
        if closed.leaks:
            _report_leaks(item, closed.leaks, strict=settings.strict_leaks)


@dataclass(frozen=True)
class _Closed:
    leaks: list[str]
    leak_check_error: Exception | None  # raised only where the test passed


async def _close(infra: Infra, *, check_leaks: bool) -> _Closed:
    # The check runs when the loop ends, before the test's outcome is known; teardown decides.
    try:
        closed = _Closed(await find_leaks(infra) if check_leaks else [], None)
    except Exception as error:
        closed = _Closed([], error)
    await infra.aclose()  # after the check: closing the bus closes its subscriptions
    return closed


def _normalized(item: pytest.Item, entries: list[TraceEntry]) -> str:
    """The trace as JSON text, after every normalise hook (none: the entries as they are)."""
    normalize = item.ihook.pytest_agents_run_normalize_trace_entry
    if not normalize.get_hookimpls():
        return trace_json(entries)
    copies = copy.deepcopy(entries)
    for entry in copies:
        normalize(entry=entry, item=item)
    return trace_json([entry for entry in copies if entry])


def _report_leaks(item: pytest.Item, leaks: list[str], *, strict: bool) -> None:
    message = f"{item.nodeid} left work in its infra: " + "; ".join(leaks)
    if strict:
        pytest.fail(f"{message} (an error under the strict leak check)", pytrace=False)
    warnings.warn_explicit(
        InfraLeakWarning(message),
        InfraLeakWarning,
        filename=str(item.path),
        lineno=(item.location[1] or 0) + 1,
    )


def services_config() -> InfraConfig:
    """Services mode's configuration, from the environment; a usage error where it names no
    real service."""
    try:
        config = read_config(os.environ)
    except InfraConfigError as error:
        raise pytest.UsageError(f"agents-run services mode: {error}") from None
    if config.is_all_memory:
        raise pytest.UsageError(
            f"agents-run services mode needs real services, but {BUS_URL}, {QUEUE_URL} and "
            f"{STORE_URL} are all unset or memory://; set them, e.g. "
            f"{BUS_URL}=redis://127.0.0.1:6379/0 {QUEUE_URL}=redis://127.0.0.1:6379/0 "
            f"{STORE_URL}=postgresql://postgres@127.0.0.1:5432/test"
        )
    return config


def default_infra(request: pytest.FixtureRequest) -> Infra:
    """The plugin's own ``pytest_agents_run_make_infra``: in memory, or in services mode on the
    configured servers in a namespace of the test's own."""
    services = request.config.stash[settings_key].services
    if services is None:
        return Infra.in_memory()
    namespace = fresh_namespace(request.config)
    config = isolated(services, namespace)
    request.node.user_properties.append((NAMESPACE_PROPERTY, namespace))
    # Runs after the fixture closed the infra (see the hookspec), also where the test failed.
    request.addfinalizer(
        lambda: _run_in_a_fresh_loop(remove_namespace(config), "removing its namespace")
    )
    _run_in_a_fresh_loop(create_namespace(config), "creating its namespace")
    # Its random ids and system clock are replaced by the fixture, as for any hook: run ids
    # repeat in every fresh namespace, so repeats can be compared.
    return build_infra(config)


def _run_in_a_fresh_loop(coroutine: Coroutine[Any, Any, None], doing: str) -> None:
    # A loop_factory keeps the Runner from replacing the thread's current loop.
    with asyncio.Runner(loop_factory=asyncio.new_event_loop) as runner:
        try:
            runner.run(asyncio.wait_for(coroutine, TEARDOWN_TIMEOUT))
        except TimeoutError:
            raise TimeoutError(
                f"agents-run: {doing} took longer than {TEARDOWN_TIMEOUT:g}s; a server did not "
                "answer"
            ) from None
