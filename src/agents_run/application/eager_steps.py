"""An agent's step started eagerly, as a task of its own: it runs at once, up to its first
suspension, with that task as the current task (so that ``asyncio.timeout`` or a ``TaskGroup``
in the step binds to it, as in any task). Most steps of most agents never suspend: they then
cost the worker no wait and no turn of the loop. This is Python 3.12's ``eager_start``, done by
hand on 3.11."""

from __future__ import annotations

import asyncio
import contextvars
import sys
from collections.abc import Coroutine, Generator
from typing import Any, Generic, TypeVar, cast

T = TypeVar("T")


class EagerStep(Generic[T]):
    """``EagerStep(step, context)``: ``ended`` at once, or ``task`` to wait for."""

    def __init__(self, step: Coroutine[Any, Any, T], context: contextvars.Context) -> None:
        loop = asyncio.get_running_loop()
        self._begun: _Begun | None = None
        self.task: asyncio.Task[T]
        if sys.version_info >= (3, 12):
            self.task = asyncio.Task(step, loop=loop, context=context, eager_start=True)
            return
        begun = self._begun = _Begun(step)
        self.task = loop.create_task(begun, context=context)
        worker = asyncio.current_task(loop)
        if worker is not None:
            asyncio.tasks._leave_task(loop, worker)
        asyncio.tasks._enter_task(loop, self.task)
        try:
            context.run(begun.begin)
        finally:
            asyncio.tasks._leave_task(loop, self.task)
            if worker is not None:
                asyncio.tasks._enter_task(loop, worker)

    @property
    def ended(self) -> bool:
        return (self._begun is not None and self._begun.ended) or self.task.done()

    def result(self) -> T:
        """What the ended step returned; raises what it raised (``CancelledError`` where its own
        code cancelled it)."""
        begun = self._begun
        if begun is not None and begun.ended:
            if begun.error is not None:
                raise begun.error
            return cast(T, begun.result)
        return self.task.result()


class _Begun(Coroutine[Any, Any, Any]):
    """The coroutine of a task whose step ``begin`` ran up to its first suspension: the task's
    first turn waits on what the step is suspended on, or (the step ended already) returns."""

    def __init__(self, step: Coroutine[Any, Any, Any]) -> None:
        self._step = step
        self._first_turn = True
        self.ended = False
        self.result: Any = None
        self.error: BaseException | None = None
        self._suspended_on: Any = None

    def begin(self) -> None:
        try:
            self._suspended_on = self._step.send(None)
        except StopIteration as returned:
            self.ended, self.result = True, returned.value
        except BaseException as error:
            self.ended, self.error = True, error

    def send(self, value: Any) -> Any:
        if self._first_turn:
            self._first_turn = False
            if self.ended:  # the worker took the step's end from ``begin``: nobody waits here
                raise StopIteration(None)
            return self._suspended_on
        return self._step.send(value)

    def throw(self, *error: Any) -> Any:
        if self.ended:
            raise StopIteration(None)
        self._first_turn = False
        return self._step.throw(*error)

    def close(self) -> None:
        self._step.close()

    def __await__(self) -> Generator[Any, None, Any]:
        raise TypeError("only its task drives a begun step")
