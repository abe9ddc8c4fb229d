"""Closing a test's infra on the event loop its ports ran on.

Networked adapters (redis-py asyncio, BullMQ, a psycopg pool) bind their connections to the loop
that first used them, and must be closed on it. By the ``infra`` fixture's teardown,
pytest-asyncio, anyio or ``asyncio.run`` have usually closed that loop already. So on the first
port call, ``LoopBoundCleanup.bind`` starts an async generator on the running loop: the loop's
async generator hooks make ``shutdown_asyncgens()`` (called by ``asyncio.run``,
``asyncio.Runner.close`` and so by pytest-asyncio and anyio, before they close the loop) run its
``finally`` inside that loop, and there the cleanup runs and its outcome is kept for the
teardown. A loop still open at teardown (a wider loop scope) runs the cleanup then; only where no
loop ran the ports, or the loop ended without running its async generators' ``finally``, does
the cleanup run in a fresh loop.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class LoopBoundCleanup(Generic[T]):
    """Runs ``cleanup`` once, on the loop where ``bind`` was last awaited, within ``timeout``."""

    def __init__(
        self, cleanup: Callable[[], Awaitable[T]], *, timeout: float, single_loop: bool = False
    ) -> None:
        """``single_loop``: the ports cannot be used again once their first loop has ended and
        the cleanup ran there (networked adapters are closed by then); say so clearly."""
        self._cleanup = cleanup
        self._timeout = timeout
        self._single_loop = single_loop
        self._loop: asyncio.AbstractEventLoop | None = None
        self._finaliser: AsyncGenerator[None, None] | None = None
        self._token: object = None  # which finaliser is current (the test may change loops)
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
        # (an earlier finaliser, its token stale, does nothing when its loop closes it).
        self._loop = loop
        self._token = token = object()
        self._done = False
        self._result = self._error = None
        self._finaliser = self._finalise_when_the_loop_ends(token)
        # Starting it here hands it to this loop's firstiter hook, so shutdown_asyncgens sees it.
        await anext(self._finaliser)

    async def _finalise_when_the_loop_ends(self, token: object) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            if token is self._token and not self._done:
                # The loop refuses (with a ResourceWarning) async generators first iterated
                # after shutdown_asyncgens began; the cleanup's own ones (context managers in
                # the adapters) finish before it returns, so nothing need track them.
                hooks = sys.get_asyncgen_hooks()
                sys.set_asyncgen_hooks(firstiter=None, finalizer=None)
                try:
                    await self._run_cleanup()
                finally:
                    sys.set_asyncgen_hooks(*hooks)

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
        (still open: on that loop; otherwise in a fresh one). Raises what the cleanup raised."""
        loop, finaliser = self._loop, self._finaliser
        loop_waits = loop is not None and not loop.is_closed() and not loop.is_running()
        if not self._done and finaliser is not None and loop is not None and loop_waits:
            loop.run_until_complete(finaliser.aclose())
        self._finaliser = self._token = None
        if not self._done:
            with asyncio.Runner(loop_factory=asyncio.new_event_loop) as runner:
                runner.run(self._run_cleanup())
        if self._error is not None:
            raise self._error
        return self._result  # type: ignore[return-value]  # set by a cleanup that returned
