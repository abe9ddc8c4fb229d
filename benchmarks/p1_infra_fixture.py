"""P1: 2,000 trivial tests taking the plugin's ``infra`` fixture, against the same tests without it.

    .venv/bin/python -m benchmarks.p1_infra_fixture [--quick]

Both suites run with the plugin installed (its start-up is P4's figure), one pytest process
each, alternating; the "this run" column adds a hand-written ContextVar fixture (what a user
would write instead) against the same bare tests.
"""

from __future__ import annotations

from benchmarks.measure import Figure, alternate, main, pytest_cpu_seconds, ratios
from benchmarks.suites import HAND_WRITTEN_FIXTURE, suite

OPTIONS = ("-p", "no:randomly")


def figures(quick: bool) -> list[Figure]:
    tests, pairs = (300, 2) if quick else (2000, 7)
    with (
        suite(tests, "assert infra is not None", fixture="infra") as plugin,
        suite(
            tests, "assert infra is not None", fixture="infra", conftest=HAND_WRITTEN_FIXTURE
        ) as hand_written,
        suite(tests, "pass") as bare,
    ):
        with_plugin, by_hand, without = alternate(
            pairs,
            lambda: pytest_cpu_seconds(plugin, *OPTIONS),
            lambda: pytest_cpu_seconds(hand_written, *OPTIONS, "-p", "no:agents_run"),
            lambda: pytest_cpu_seconds(bare, *OPTIONS),
        )
    hand = sorted(ratios(by_hand, without))[len(by_hand) // 2]
    return [
        Figure(
            "P1",
            f"{tests:,} trivial tests taking `infra`",
            "the same tests without it",
            ratios(with_plugin, without),
            "<= 1.10x",
            higher_is_better=False,
            limit=1.10,
            detail=f"{tests / min(without):,.0f} bare tests per CPU second; hand-written fixture "
            f"{hand:.2f}x",
        )
    ]


if __name__ == "__main__":
    main(figures)
