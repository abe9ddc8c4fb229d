"""Golden traces: a run's trace kept beside the test module, so that a change in what the run
does shows up in review and fails the test until the file is updated."""

from __future__ import annotations

import json

import pytest

GREETER = """
import pytest
from agents_run import register_agent, run_until_idle, start_run
from agents_run.application.agents import unregister_agent

GREETING = "hey"

@pytest.fixture
def greeter():
    @register_agent("greeter")
    async def greet(input):
        yield {"text": GREETING}

    yield "greeter"
    unregister_agent("greeter")

async def test_greets(greeter, golden_trace):
    await start_run(greeter, {"name": "ada"})
    await run_until_idle()

async def test_greets_twice(greeter, golden_trace):
    for name in ("ada", "bob"):
        await start_run(greeter, {"name": name})
    await run_until_idle()
"""


def record(project: pytest.Pytester, *args: str) -> pytest.RunResult:
    return project.runpytest("--agents-run-update-traces", "-p", "no:randomly", *args)


def test_update_writes_a_reviewable_file_beside_the_test_module(project: pytest.Pytester) -> None:
    project.makepyfile(test_greeting=GREETER)
    result = record(project)
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["agents-run golden traces: wrote test_greeting.traces.json"])
    text = (project.path / "test_greeting.traces.json").read_text()
    lines = text.splitlines()
    assert lines[:3] == [
        "{",
        '  "test_greets": [',
        '    {"agent": "greeter", "input": {"name": "ada"}, "op": "create_run", '
        '"run_id": "run-000001"},',
    ]
    assert (
        '    {"data": {"text": "hey"}, "op": "append_event", "run_id": "run-000001", "seq": 2, '
        '"type": "RunStep"},' in lines
    )
    assert '  "test_greets_twice": [' in lines
    traces = json.loads(text)
    assert sorted(traces) == ["test_greets", "test_greets_twice"]
    assert len(lines) == len(traces["test_greets"]) + len(traces["test_greets_twice"]) + 6
    # The same run records the same file: a second update changes nothing.
    record(project).stdout.no_fnmatch_line("*wrote*")
    assert (project.path / "test_greeting.traces.json").read_text() == text


def test_a_changed_run_fails_with_the_divergence_report(project: pytest.Pytester) -> None:
    project.makepyfile(test_greeting=GREETER)
    record(project)
    project.makepyfile(test_greeting=GREETER.replace('GREETING = "hey"', 'GREETING = "hi"'))
    result = project.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=2, errors=2)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_greets*",
            "golden trace changed: test_greeting.py::test_greets did not do what "
            "test_greeting.traces.json [[]test_greets] recorded",
            '  entry 5 (append_event run-000001 seq 2, agent greeter): data.text: "hey" != "hi"',
            "    (golden != this run; the first 4 agree; golden recorded 10, this run 10)",
            "update: pytest test_greeting.py::test_greets --agents-run-update-traces (then review "
            "the file's diff and commit it)",
            "rerun: pytest test_greeting.py::test_greets",
        ]
    )


def test_a_test_without_a_recorded_trace_fails_saying_how_to_record_it(
    project: pytest.Pytester,
) -> None:
    project.makepyfile(test_greeting=GREETER)
    result = project.runpytest("-p", "no:randomly", "-k", "test_greets and not twice")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "golden trace missing: test_greeting.traces.json has no trace for test_greets",
            "update: pytest test_greeting.py::test_greets --agents-run-update-traces*",
        ]
    )


def test_a_failing_test_is_not_compared(project: pytest.Pytester) -> None:
    project.makepyfile(
        "async def test_fails(infra, golden_trace):\n    assert False, 'its own failure'\n"
    )
    result = project.runpytest("-p", "no:randomly")
    result.assert_outcomes(failed=1)
    result.stdout.no_fnmatch_line("*golden trace*")


def test_sections_no_test_uses_are_reported_then_removed_by_an_update(
    project: pytest.Pytester,
) -> None:
    project.makepyfile(test_greeting=GREETER)
    record(project)
    project.makepyfile(test_greeting=GREETER.split("async def test_greets_twice", maxsplit=1)[0])
    result = project.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "agents-run: 1 golden trace no test uses any more (--agents-run-update-traces "
            "removes them):",
            "  test_greeting.traces.json: test_greets_twice",
        ]
    )
    # Naming one test is no reason to call the others stale.
    only = project.runpytest("-p", "no:randomly", "test_greeting.py::test_greets")
    only.stdout.no_fnmatch_line("*no test uses*")
    record(project)
    assert sorted(json.loads((project.path / "test_greeting.traces.json").read_text())) == [
        "test_greets"
    ]


def test_a_deselected_test_keeps_its_section(project: pytest.Pytester) -> None:
    project.makepyfile(test_greeting=GREETER)
    record(project)
    result = record(project, "-k", "twice")
    result.assert_outcomes(passed=1, deselected=1)
    assert sorted(json.loads((project.path / "test_greeting.traces.json").read_text())) == [
        "test_greets",
        "test_greets_twice",
    ]


DETERMINISTIC_GREETER = GREETER.replace(
    "async def test_greets(", "@pytest.mark.deterministic\nasync def test_greets("
)


def test_golden_traces_work_under_xdist_with_repeats(project: pytest.Pytester) -> None:
    project.makepyfile(test_greeting=DETERMINISTIC_GREETER)
    written = project.runpytest_subprocess(
        "-n", "2", "--repeat-deterministic=3", "--agents-run-update-traces"
    )
    written.assert_outcomes(passed=4)  # test_greets' three repeats, on either worker
    recorded = project.runpytest("--agents-run-update-traces", "-p", "no:randomly")
    recorded.stdout.no_fnmatch_line("*wrote*")  # the controller wrote the same file, once
    project.makepyfile(
        test_greeting=GREETER.replace('GREETING = "hey"', 'GREETING = "hi"').replace(
            "async def test_greets_twice", "async def test_greets_again"
        )
    )
    result = project.runpytest_subprocess("-n", "2", "-p", "no:randomly")
    # Both pass their call; at teardown test_greets differs and test_greets_again is unrecorded.
    result.assert_outcomes(passed=2, errors=2)
    result.stdout.fnmatch_lines_random(
        [
            '  entry 5 (append_event run-000001 seq 2, agent greeter): data.text: "hey" != "hi"',
            "golden trace missing: test_greeting.traces.json has no trace for test_greets_again",
            "  test_greeting.traces.json: test_greets_twice",
        ]
    )


def test_deterministic_tests_with_golden_traces_repeat_against_the_same_file(
    project: pytest.Pytester,
) -> None:
    project.makepyfile(test_greeting=DETERMINISTIC_GREETER)
    record(project, "--repeat-deterministic=3").assert_outcomes(passed=4)
    traces = json.loads((project.path / "test_greeting.traces.json").read_text())
    assert sorted(traces) == ["test_greets", "test_greets_twice"]  # one section for 3 repeats
    project.runpytest("-p", "no:randomly", "--repeat-deterministic=3").assert_outcomes(passed=4)


def test_the_normalise_hook_masks_a_volatile_value_before_the_comparison(
    project: pytest.Pytester,
) -> None:
    project.makeconftest(
        """
        def pytest_agents_run_normalize_trace_entry(entry, item):
            if entry["op"] == "create_run":
                entry["input"]["name"] = "<name>"
        """
    )
    project.makepyfile(test_greeting=GREETER)
    record(project)
    assert '"input": {"name": "<name>"}' in (project.path / "test_greeting.traces.json").read_text()
    project.makepyfile(test_greeting=GREETER.replace('"ada"', '"eve"'))
    project.runpytest("-p", "no:randomly").assert_outcomes(passed=2)
