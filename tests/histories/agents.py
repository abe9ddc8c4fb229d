"""The agent whose runs the sample histories beside this module recorded (``*.json``, written
by ``agents-run export``; ``AGENTS_RUN_UPDATE_HISTORIES=1`` rewrites them from this code)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from agents_run import RunContext, register_agent
from agents_run.domain.json_data import JsonObject

PLACES = {
    "lisbon": [
        {"name": "harbour", "tags": ["boats", "fish"]},
        {"name": "old town", "tags": ["trams", "tiles"]},
    ],
}


def search_places(city: str) -> list[JsonObject]:
    if city not in PLACES:
        raise LookupError(f"no places known in {city!r}")
    return PLACES[city]


def summarise(places: list[JsonObject]) -> str:
    return " then ".join(str(place["name"]) for place in places)


@register_agent("trip-planner")
async def trip_planner(input: JsonObject, ctx: RunContext) -> AsyncIterator[JsonObject]:
    """Search a city's places (an effect), yield each, rest a while, then a summary."""
    started = ctx.now()
    places = await ctx.step("search places", search_places, input["city"])
    for place in places:
        yield {"place": place, "at": started.isoformat()}
    await ctx.sleep(60)
    yield {"summary": await ctx.step("summarise", summarise, places)}
