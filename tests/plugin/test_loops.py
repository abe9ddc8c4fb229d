"""LoopBoundCleanup: the cleanup runs on the loop that used the ports, whoever ends that loop."""

from __future__ import annotations

import asyncio

import pytest

from pytest_agents_run.loops import LoopBoundCleanup, SpareLoop


class Cleanup:
    """Records the loop each run happened on."""

    def __init__(self, error: Exception | None = None, delay: float = 0.0) -> None:
        self.loops: list[asyncio.AbstractEventLoop] = []
        self.error = error
        self.delay = delay

    async def __call__(self) -> str:
        self.loops.append(asyncio.get_running_loop())
        await asyncio.sleep(self.delay)
        if self.error is not None:
            raise self.error
        return "closed"


def test_the_cleanup_runs_inside_the_loop_as_asyncio_run_ends_it() -> None:
    cleanup = Cleanup()
    closing = LoopBoundCleanup(cleanup, timeout=5)

    async def use() -> asyncio.AbstractEventLoop:
        await closing.bind()
        await closing.bind()  # the same loop: noted once
        return asyncio.get_running_loop()

    loop = asyncio.run(use())
    assert cleanup.loops == [loop]  # already, before anyone asked
    assert closing.result() == "closed"
    assert cleanup.loops == [loop]


def test_a_loop_still_open_runs_the_cleanup_when_asked() -> None:
    cleanup = Cleanup()
    closing = LoopBoundCleanup(cleanup, timeout=5)
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(closing.bind())
        assert cleanup.loops == []
        assert closing.result() == "closed"
        assert cleanup.loops == [loop]
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
    assert cleanup.loops == [loop]  # once


def test_without_a_loop_the_cleanup_runs_in_a_fresh_one() -> None:
    cleanup = Cleanup()
    assert LoopBoundCleanup(cleanup, timeout=5).result() == "closed"
    assert len(cleanup.loops) == 1
    assert cleanup.loops[0].is_closed()


def test_a_loop_closed_without_cancelling_its_tasks_falls_back_quietly() -> None:
    cleanup = Cleanup()
    closing = LoopBoundCleanup(cleanup, timeout=5)
    loop = asyncio.new_event_loop()
    loop.run_until_complete(closing.bind())
    loop.close()  # its tasks never cancelled: the sentinel never ran
    assert closing.result() == "closed"
    assert cleanup.loops[0] is not loop


def test_infra_used_on_two_loops_in_turn_is_cleaned_up_on_each() -> None:
    cleanup = Cleanup()
    closing = LoopBoundCleanup(cleanup, timeout=5)

    async def use() -> asyncio.AbstractEventLoop:
        await closing.bind()
        return asyncio.get_running_loop()

    first = asyncio.run(use())
    second = asyncio.run(use())
    assert cleanup.loops == [first, second]
    assert closing.result() == "closed"


def test_what_the_cleanup_raised_is_raised_to_the_teardown() -> None:
    closing = LoopBoundCleanup(Cleanup(error=ConnectionError("gone")), timeout=5)

    async def use() -> None:
        await closing.bind()

    asyncio.run(use())
    with pytest.raises(ConnectionError, match="gone"):
        closing.result()


def test_a_cleanup_that_does_not_finish_in_time_says_so() -> None:
    closing = LoopBoundCleanup(Cleanup(delay=5), timeout=0.01)
    with pytest.raises(TimeoutError, match=r"took longer than 0.01s; an adapter did not answer"):
        closing.result()


def test_single_loop_infra_used_again_after_its_loop_ended_says_so() -> None:
    cleanup = Cleanup()
    closing = LoopBoundCleanup(cleanup, timeout=5, single_loop=True)

    async def use() -> None:
        await closing.bind()

    asyncio.run(use())
    with pytest.raises(RuntimeError, match="used its infra from a second event loop"):
        asyncio.run(use())
    assert len(cleanup.loops) == 1
    assert closing.result() == "closed"


def test_without_a_loop_the_cleanup_can_run_on_a_spare_loop_kept_for_the_next() -> None:
    spare = SpareLoop()
    first, second = Cleanup(), Cleanup()
    try:
        assert LoopBoundCleanup(first, timeout=5, spare=spare).result() == "closed"
        assert LoopBoundCleanup(second, timeout=5, spare=spare).result() == "closed"
        assert first.loops == second.loops
        assert not first.loops[0].is_closed()
    finally:
        spare.close()
    assert first.loops[0].is_closed()


def test_a_spare_loop_cancels_the_tasks_a_cleanup_left_behind() -> None:
    spare = SpareLoop()
    left: list[asyncio.Task[None]] = []

    async def cleanup() -> str:
        left.append(asyncio.get_running_loop().create_task(asyncio.sleep(60)))
        return "closed"

    try:
        assert LoopBoundCleanup(cleanup, timeout=5, spare=spare).result() == "closed"
        assert left[0].cancelled()
    finally:
        spare.close()
