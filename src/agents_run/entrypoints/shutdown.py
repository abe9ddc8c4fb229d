"""How every long-running command ends on SIGTERM or SIGINT: the first signal drains, a second
one stops."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Iterable, Iterator

log = logging.getLogger("agents_run.shutdown")

SHUTDOWN_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_held: list[int] = []  # signals that arrived before shutdown_on_signals was entered


def hold_signals(signals: Iterable[signal.Signals] = SHUTDOWN_SIGNALS) -> None:
    """From now until ``shutdown_on_signals`` is entered, note ``signals`` instead of dying by
    them; that block then handles each as though it had come inside it. Call it first thing in
    a long-running command, so a SIGTERM during start-up drains instead of ending it -15."""
    for signum in signals:
        signal.signal(signum, lambda received, _frame: _held.append(received))


@contextlib.contextmanager
def shutdown_on_signals(
    draining: asyncio.Event,
    stop: asyncio.Event,
    *,
    grace: float | None = None,
    signals: Iterable[signal.Signals] = SHUTDOWN_SIGNALS,
) -> Iterator[None]:
    """While the block runs, the first of ``signals`` sets ``draining`` (take no new work, finish
    what is in hand) and the next one sets ``stop`` (end what is in hand now). With ``grace``,
    ``stop`` also follows ``grace`` seconds after the first signal. A signal that arrives once
    ``draining`` was set by other means counts as the second. The handlers are removed on exit.

    Must be entered in a coroutine running on the main thread's loop (asyncio's rule for
    signal handlers).
    """
    loop = asyncio.get_running_loop()
    grace_timer: asyncio.TimerHandle | None = None

    def on_signal(signum: int) -> None:
        nonlocal grace_timer
        if draining.is_set():
            log.info("signal %d again: stopping now", signum)
            stop.set()
            return
        if grace is None:
            log.info("signal %d: draining", signum)
        else:
            log.info("signal %d: draining; work in progress has %gs to end", signum, grace)
            grace_timer = loop.call_later(grace, stop.set)
        draining.set()

    installed: list[signal.Signals] = []
    try:
        for signum in signals:
            loop.add_signal_handler(signum, on_signal, signum)
            installed.append(signum)
        for held in [number for number in _held if number in installed]:
            _held.remove(held)
            on_signal(held)
        yield
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)
        if grace_timer is not None:
            grace_timer.cancel()
