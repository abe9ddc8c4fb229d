"""P2: a marked suite under ``--repeat-deterministic=3``, against pytest-repeat ``--count=3``.

    .venv/bin/python -m benchmarks.p2_repeat_deterministic [--quick]

Each test starts an ``echo`` run and runs it to the end in memory. The anchor runs the same test
files three times with pytest-repeat and a hand-written fixture giving fresh in-memory infra
(the plugin disabled); the contender also records every repeat's trace and compares them.
"""

from __future__ import annotations

from benchmarks.measure import Figure, alternate, main, pytest_cpu_seconds, ratios
from benchmarks.suites import HAND_WRITTEN_FIXTURE, suite

IMPORTS = """
import asyncio
import pytest
from agents_run import run_until_idle, start_run
"""
BODY = """
async def work():
    await start_run("echo", {"text": "a b c d e f g h"})
    await run_until_idle()
asyncio.run(work())
"""
OPTIONS = ("-p", "no:randomly")


def figures(quick: bool) -> list[Figure]:
    tests, pairs = (60, 2) if quick else (400, 7)
    shape = {"imports": IMPORTS, "fixture": "infra", "decorator": "@pytest.mark.deterministic"}
    with (
        suite(tests, BODY, **shape) as plugin,
        suite(tests, BODY, **shape, conftest=HAND_WRITTEN_FIXTURE) as anchor,
    ):
        repeated, counted = alternate(
            pairs,
            lambda: pytest_cpu_seconds(plugin, *OPTIONS, "--repeat-deterministic=3"),
            lambda: pytest_cpu_seconds(anchor, *OPTIONS, "-p", "no:agents_run", "--count=3"),
        )
    return [
        Figure(
            "P2",
            f"{tests} marked tests, `--repeat-deterministic=3`",
            "pytest-repeat `--count=3`, hand-written fixture",
            ratios(repeated, counted),
            "<= 1.05x",
            higher_is_better=False,
            limit=1.05,
            detail=f"{3 * tests / min(counted):,.0f} anchor test runs per CPU second",
        )
    ]


if __name__ == "__main__":
    main(figures)
