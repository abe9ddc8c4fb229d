"""The benchmarks' own arithmetic, and a smoke run of the in-memory figure (P5): benchmarks time
nothing here; they must only keep running (``make bench`` measures)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from benchmarks.measure import Figure, alternate, ratios, table
from benchmarks.p5_in_memory import harness, pipeline


def figure(values: list[float], *, higher_is_better: bool, limit: float | None) -> Figure:
    return Figure(
        "P0", "a measure", "an anchor", values, "a target",
        higher_is_better=higher_is_better, limit=limit,
    )  # fmt: skip


def test_a_figure_quotes_the_median_and_spread_and_judges_its_target() -> None:
    faster = figure([0.6, 0.4, 0.9], higher_is_better=True, limit=0.5)
    assert faster.median == 0.6
    assert faster.meets_target is True
    assert "| 0.60x | 0.40x to 0.90x | 3 |" in faster.row()
    assert figure([1.2, 1.3], higher_is_better=False, limit=1.1).meets_target is False
    assert figure([1.0], higher_is_better=False, limit=None).meets_target is None
    assert table([faster]).splitlines()[2] == faster.row()


def test_paired_sides_take_turns_going_first() -> None:
    order: list[str] = []

    def side(name: str) -> float:
        order.append(name)
        return float(len(order))

    first, second = alternate(3, lambda: side("a"), lambda: side("b"))
    assert order == ["a", "b", "b", "a", "a", "b"]
    assert ratios(first, second) == [1 / 2, 4 / 3, 5 / 6]


@pytest.mark.parametrize("contender", [harness, pipeline])
async def test_the_in_memory_figure_runs_start_to_stream(
    contender: Callable[[int], Awaitable[float]],
) -> None:
    assert await contender(20) > 0  # each checks that every event was streamed
