"""Agents of the fault tests, for their worker processes (`--agents tests.faults.agents`)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator

from agents_run import RunContext, register_agent
from agents_run.domain.json_data import JsonObject


def _execute_step(log: str, run_id: str, index: int) -> JsonObject:
    """The step's side effect: one line per execution in ``log`` (O_APPEND: safe across
    processes), so a test can count how many times each recorded step really ran."""
    with open(log, "a", encoding="utf-8") as executions:
        executions.write(f"{run_id} {index} {os.getpid()}\n")
    return {"index": index, "pid": os.getpid()}


@register_agent("counted-steps")
async def counted_steps(input: JsonObject, ctx: RunContext) -> AsyncIterator[JsonObject]:
    """``steps`` recorded steps, each logged to ``log`` when it executes; yields what the step
    recorded (so a replay yields the same) and pauses ``pause`` seconds after each."""
    pause = float(input.get("pause", 0.05))
    for index in range(int(input["steps"])):
        done = await ctx.step(f"step {index}", _execute_step, str(input["log"]), ctx.run_id, index)
        yield {"step": index, "pid": done["pid"]}
        await asyncio.sleep(pause)


@register_agent("timed-steps")
async def timed_steps(input: JsonObject, ctx: RunContext) -> AsyncIterator[JsonObject]:
    """``steps`` events, each carrying the wall-clock time it was made (recorded, so a replay
    yields the same), for delivery latencies; ``pause`` seconds between them."""
    pause = float(input.get("pause", 0.0))
    for index in range(int(input["steps"])):
        made_at = await ctx.step(f"clock {index}", time.time)
        yield {"step": index, "at": made_at}
        await asyncio.sleep(pause)
