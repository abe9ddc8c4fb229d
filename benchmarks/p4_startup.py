"""P4: the plugin's start-up, ``pytest --co`` in an empty folder against ``-p no:agents_run``.

    .venv/bin/python -m benchmarks.p4_startup [--quick]

The figure is the difference of the paired CPU times (see measure.pytest_cpu_seconds), in
milliseconds.
"""

from __future__ import annotations

from benchmarks.measure import Figure, alternate, main, pytest_cpu_seconds
from benchmarks.suites import suite

OPTIONS = ("--co", "-p", "no:randomly")


def figures(quick: bool) -> list[Figure]:
    pairs = 3 if quick else 21
    with suite(0, "") as empty:
        with_plugin, without = alternate(
            pairs,
            lambda: pytest_cpu_seconds(empty, *OPTIONS),
            lambda: pytest_cpu_seconds(empty, *OPTIONS, "-p", "no:agents_run"),
        )
    return [
        Figure(
            "P4",
            "plugin start-up, `pytest --co` in an empty folder",
            "`-p no:agents_run`",
            [1000 * (a - b) for a, b in zip(with_plugin, without, strict=True)],
            "<= +25 ms",
            unit="ms",
            higher_is_better=False,
            limit=25.0,
            detail=f"{1000 * min(without):,.0f} CPU ms without the plugin",
        )
    ]


if __name__ == "__main__":
    main(figures)
