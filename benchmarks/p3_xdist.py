"""P3: a CPU-bound suite taking ``infra`` under ``-n 2``, against the same tests under ``-n 2``
with the plugin disabled and no fixture.

    .venv/bin/python -m benchmarks.p3_xdist [--quick]
"""

from __future__ import annotations

from benchmarks.measure import Figure, alternate, main, pytest_cpu_seconds, ratios
from benchmarks.suites import suite

BODY = "assert sum(i * i for i in range(40_000)) > 0"
OPTIONS = ("-p", "no:randomly", "-n", "2")


def figures(quick: bool) -> list[Figure]:
    tests, pairs = (100, 2) if quick else (600, 5)
    with suite(tests, BODY, fixture="infra") as plugin, suite(tests, BODY) as bare:
        with_plugin, without = alternate(
            pairs,
            lambda: pytest_cpu_seconds(plugin, *OPTIONS),
            lambda: pytest_cpu_seconds(bare, *OPTIONS, "-p", "no:agents_run"),
        )
    return [
        Figure(
            "P3",
            f"{tests} CPU-bound tests taking `infra`, `-n 2`",
            "the same without the plugin, `-n 2`",
            ratios(with_plugin, without),
            "<= 1.05x",
            higher_is_better=False,
            limit=1.05,
            detail=f"{tests / min(without):,.0f} bare tests per CPU second",
        )
    ]


if __name__ == "__main__":
    main(figures)
