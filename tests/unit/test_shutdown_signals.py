"""Every long-running command ends the same way: the first signal drains, a second one stops.

The signals here are SIGUSR1 and SIGUSR2, sent to this very process, so that a failure cannot
end the test run the way a stray SIGTERM would.
"""

from __future__ import annotations

import asyncio
import os
import signal

from agents_run.entrypoints.shutdown import hold_signals, shutdown_on_signals

DEADLINE = 5.0
SIGNALS = (signal.SIGUSR1, signal.SIGUSR2)


async def send(signum: signal.Signals, until: asyncio.Event) -> None:
    os.kill(os.getpid(), signum)
    await asyncio.wait_for(until.wait(), DEADLINE)


async def test_the_first_signal_drains_and_the_second_stops() -> None:
    draining, stop = asyncio.Event(), asyncio.Event()
    with shutdown_on_signals(draining, stop, signals=SIGNALS):
        await send(signal.SIGUSR1, until=draining)
        assert not stop.is_set()
        await send(signal.SIGUSR2, until=stop)  # any of the signals counts as the second


async def test_with_a_grace_period_stop_follows_the_first_signal_on_its_own() -> None:
    draining, stop = asyncio.Event(), asyncio.Event()
    with shutdown_on_signals(draining, stop, grace=0, signals=SIGNALS):
        await send(signal.SIGUSR1, until=stop)
    assert draining.is_set()


async def test_a_signal_after_draining_began_otherwise_stops_at_once() -> None:
    draining, stop = asyncio.Event(), asyncio.Event()
    with shutdown_on_signals(draining, stop, grace=3600, signals=SIGNALS):
        draining.set()  # as `serve` does when told to stop without a signal
        await send(signal.SIGUSR1, until=stop)


async def test_the_handlers_are_removed_when_the_block_ends() -> None:
    before = [signal.getsignal(signum) for signum in SIGNALS]
    with shutdown_on_signals(asyncio.Event(), asyncio.Event(), signals=SIGNALS):
        assert [signal.getsignal(signum) for signum in SIGNALS] != before
    assert [signal.getsignal(signum) for signum in SIGNALS] == [signal.SIG_DFL] * len(SIGNALS)
    assert not asyncio.get_running_loop().remove_signal_handler(signal.SIGUSR1)


async def test_a_signal_held_before_the_block_drains_as_soon_as_it_begins() -> None:
    draining, stop = asyncio.Event(), asyncio.Event()
    hold_signals(SIGNALS)
    os.kill(os.getpid(), signal.SIGUSR1)  # during start-up: noted, not the default action
    with shutdown_on_signals(draining, stop, signals=SIGNALS):
        assert draining.is_set()
        assert not stop.is_set()
        await send(signal.SIGUSR2, until=stop)
    assert [signal.getsignal(signum) for signum in SIGNALS] == [signal.SIG_DFL] * len(SIGNALS)
