"""``trip-planner`` as a careless change would leave it: its effect renamed. Imported by
``agents-run replay --agents tests.histories.changed_agents`` to show a run in flight breaking."""

from __future__ import annotations

from collections.abc import AsyncIterator

from agents_run import RunContext, register_agent
from agents_run.domain.json_data import JsonObject
from tests.histories.agents import search_places, summarise


@register_agent("trip-planner")
async def trip_planner(input: JsonObject, ctx: RunContext) -> AsyncIterator[JsonObject]:
    started = ctx.now()
    places = await ctx.step("find places", search_places, input["city"])
    for place in places:
        yield {"place": place, "at": started.isoformat()}
    await ctx.sleep(60)
    yield {"summary": await ctx.step("summarise", summarise, places)}
