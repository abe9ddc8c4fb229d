"""Crash injection as a user of the plugin meets it: the example of docs/testing.md runs as
written, repeated and compared, and a crash that never comes fails the test saying why."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).parents[2] / "docs" / "testing.md"

UNREACHED = """

async def test_crashes_too_late(infra):
    await start_run("echo", {"text": "a b"})
    with crash_at(Crash.AFTER_APPEND, nth=9):
        await run_until_idle()
"""


def documented_example() -> str:
    """The first Python block of the section "Crashing the worker"."""
    section = DOCS.read_text().split("## Crashing the worker", 1)[1]
    found = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert found is not None, "docs/testing.md: the crash injection section lost its example"
    return found.group(1)


def test_the_documented_example_passes_deterministically_and_a_late_crash_fails(
    project: pytest.Pytester,
) -> None:
    deterministic = "import pytest\n\npytestmark = pytest.mark.deterministic\n\n"
    project.makepyfile(test_checkout=deterministic + documented_example() + UNREACHED)
    result = project.runpytest("-p", "no:randomly", "--repeat-deterministic=3")
    result.assert_outcomes(passed=3, failed=3)
    result.stdout.fnmatch_lines(
        [
            "*CrashPointNotReached: crash_at(Crash.AFTER_APPEND, nth=9): the block passed that "
            "point 4 time(s) and ended*",
            "*2 deterministic tests, 6 runs, 0 divergences*",
        ]
    )
