"""Closing a test's infra on the event loop its ports ran on.

Networked adapters (redis-py asyncio, BullMQ, a psycopg pool) bind their connections to the loop
that first used them, and must be closed on it. By the ``infra`` fixture's teardown,
pytest-asyncio, anyio or ``asyncio.run`` have usually closed that loop already. So on the first
port call, ``LoopBoundCleanup.bind`` starts a sentinel task on the running loop that waits
forever: ``asyncio.run`` and ``asyncio.Runner.close`` (and so pytest-asyncio and anyio) cancel
every task before they close the loop, and the sentinel then runs the cleanup inside that loop
and keeps its outcome for the teardown. A loop still open at teardown (a wider loop scope) has
the sentinel cancelled and run then; only where no loop ran the ports, or the loop was closed
without cancelling its tasks, does the cleanup run in a fresh loop (or the session's
``SpareLoop``: most tests never touch their infra, and a fresh loop per test costs more than the
test itself).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class SpareLoop:
    """One event loop, kept for the cleanups that no test's loop ran: about 60 us a cleanup
    here instead of about 650 us for a fresh ``asyncio.Runner``. Tasks a cleanup leaves behind
    are cancelled after it, as a Runner would."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        if self._loop is None or self._loop.is_closed():
            self._loop = asyncio.new_event_loop()
        loop = self._loop
        try:
            return loop.run_until_complete(coroutine)
        finally:
            leftovers = asyncio.all_tasks(loop)
            for task in leftovers:
                task.cancel()
            if leftovers:
                loop.run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))

    def close(self) -> None:
        loop, self._loop = self._loop, None
        if loop is not None and not loop.is_closed():
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()


class LoopBoundCleanup(Generic[T]):
    """Runs ``cleanup`` once, on the loop where ``bind`` was last awaited, within ``timeout``."""

    def __init__(
        self,
        cleanup: Callable[[], Awaitable[T]],
        *,
        timeout: float,
        single_loop: bool = False,
        spare: SpareLoop | None = None,
    ) -> None:
        """``single_loop``: the ports cannot be used again once their first loop has ended and
        the cleanup ran there (networked adapters are closed by then); say so clearly.
        ``spare``: where no open loop used the ports, clean up there instead of a fresh loop."""
        self._cleanup = cleanup
        self._timeout = timeout
        self._single_loop = single_loop
        self._spare = spare
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sentinel: asyncio.Task[None] | None = None
        self._token: object = None  # which sentinel is current (the test may change loops)
        self._cleaning = False
        self._done = False
        self._result: T | None = None
        self._error: BaseException | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The loop the ports were last used on, if any."""
        return self._loop

    async def bind(self) -> None:
        """Note the running loop; called by the recording proxies before every port call."""
        loop = asyncio.get_running_loop()
        if loop is self._loop or self._cleaning:
            return
        if self._single_loop and self._done:
            raise RuntimeError(
                "agents-run: this test used its infra from a second event loop, after the first "
                "loop ended and closed it (real adapters cannot move between loops); use one "
                "event loop per test: one asyncio.run, or an async test"
            )
        # First use, or the test moved to another loop: the cleanup now belongs to this one
        # (an earlier sentinel, its token stale, does nothing when its loop cancels it).
        self._loop = loop
        self._token = token = object()
        self._done = False
        self._result = self._error = None
        self._sentinel = loop.create_task(
            self._clean_up_when_cancelled(token), name="agents-run: close the test's infra"
        )

    async def _clean_up_when_cancelled(self, token: object) -> None:
        # asyncio.run and asyncio.Runner.close (so pytest-asyncio and anyio) cancel every task
        # before closing the loop: this one then runs the cleanup inside that loop, beside the
        # adapters' own tasks. That is early enough for a psycopg pool, whose workers swallow
        # cancellation and stop only when the pool is closed.
        try:
            await asyncio.get_running_loop().create_future()
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            if token is self._token and not self._done:
                await self._run_cleanup()

    async def _run_cleanup(self) -> None:
        self._cleaning = True
        try:
            self._result = await asyncio.wait_for(self._cleanup(), self._timeout)
        except TimeoutError:
            self._error = TimeoutError(
                f"agents-run: closing the test's infra took longer than {self._timeout:g}s; "
                "an adapter did not answer"
            )
        except (Exception, asyncio.CancelledError) as error:
            self._error = error
        finally:
            self._cleaning = False
            self._done = True

    def result(self) -> T:
        """The cleanup's result, running it now where the loop that used the ports did not
        (still open: on that loop; otherwise on the spare or a fresh one). Raises what the
        cleanup raised."""
        loop, sentinel = self._loop, self._sentinel
        loop_waits = loop is not None and not loop.is_closed() and not loop.is_running()
        if not self._done and sentinel is not None and loop is not None and loop_waits:
            sentinel.cancel()
            loop.run_until_complete(sentinel)
        self._sentinel = self._token = None
        if not self._done and self._spare is not None:
            self._spare.run(self._run_cleanup())
        elif not self._done:
            with asyncio.Runner(loop_factory=asyncio.new_event_loop) as runner:
                runner.run(self._run_cleanup())
        if self._error is not None:
            raise self._error
        return self._result  # type: ignore[return-value]  # set by a cleanup that returned
