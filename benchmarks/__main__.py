"""Every figure of docs/benchmarks.md, P1 to P8, in one table: ``make bench`` (``QUICK=1``: less
work and fewer pairs, a smoke run whose ratios are rough).

    .venv/bin/python -m benchmarks [--quick] [P1 P5 ...]
"""

from __future__ import annotations

import argparse
import importlib
import time

from benchmarks.measure import Figure, machine, table

SCRIPTS = {
    "P1": "benchmarks.p1_infra_fixture",
    "P2": "benchmarks.p2_repeat_deterministic",
    "P3": "benchmarks.p3_xdist",
    "P4": "benchmarks.p4_startup",
    "P5": "benchmarks.p5_in_memory",
    "P6": "benchmarks.p6_redis",
    "P7": "benchmarks.p7_postgres",
    "P8": "benchmarks.p8_growth",
}


def run(ids: list[str], quick: bool) -> None:
    print(f"machine: {machine()}", flush=True)
    figures: list[Figure] = []
    for figure_id in ids:
        began = time.perf_counter()
        figures += importlib.import_module(SCRIPTS[figure_id]).figures(quick)
        print(f"{figure_id}: {time.perf_counter() - began:.0f} s", flush=True)
    print()
    print(table(figures))
    print(f"\nmachine at the end: {machine()}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("ids", nargs="*", metavar="ID", help=f"some of {', '.join(SCRIPTS)}")
    arguments = parser.parse_args()
    unknown = sorted(set(arguments.ids) - SCRIPTS.keys())
    if unknown:
        parser.error(f"unknown figure {', '.join(unknown)}; one of {', '.join(SCRIPTS)}")
    run(arguments.ids or list(SCRIPTS), arguments.quick)
