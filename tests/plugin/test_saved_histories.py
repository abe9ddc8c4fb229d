"""A project's CI replays its saved histories with ``saved_histories``: the agent code that
recorded them passes, a change that would break those runs in flight fails, naming the file and
the first difference."""

from __future__ import annotations

import shutil

import pytest

from tests.histories import FINISHED

REPLAY_TEST = """
import pytest
from agents_run import replay_history
from pytest_agents_run import saved_histories


@pytest.mark.parametrize("history", saved_histories("histories"))
async def test_runs_in_flight_replay_against_this_code(history):
    await replay_history(history)
"""


# The same code passing: tests/unit/test_replay_history.py runs this test over tests/histories.
def test_saved_histories_fail_ci_where_the_agent_changed(project: pytest.Pytester) -> None:
    (project.path / "histories").mkdir()
    shutil.copy(FINISHED, project.path / "histories" / "lisbon.json")
    project.makeconftest("import tests.histories.changed_agents\n")
    project.makepyfile(test_replay=REPLAY_TEST)
    result = project.runpytest("-p", "no:randomly")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*test_runs_in_flight_replay_against_this_code*lisbon*",
            "*NondeterministicReplay: run 'run-000001' (agent 'trip-planner'): the agent departed "
            'from the run\'s record at journal entry 2 name: recorded "search places", now '
            '"find places"',
        ]
    )
