"""The divergence report points at the difference, in lines a terminal can show."""

from __future__ import annotations

import json

import pytest

from agents_run.domain.differences import WIDTH
from pytest_agents_run.divergence import trace_divergence
from pytest_agents_run.recording import TraceEntry

WORDS = " ".join(f"word{n}" for n in range(300))


def created(run_id: str = "run-000001", agent: str = "writer") -> TraceEntry:
    return {"op": "create_run", "run_id": run_id, "agent": agent, "input": {}}


def step(seq: int, data: object, run_id: str = "run-000001") -> TraceEntry:
    return {"op": "append_event", "run_id": run_id, "seq": seq, "type": "RunStep", "data": data}


def test_a_short_value_is_shown_by_its_path_inside_the_entry() -> None:
    lines = trace_divergence(
        [created(), step(1, {"text": "hey"})], [created(), step(1, {"text": "hi"})], "a", "b"
    )
    assert lines == [
        '  entry 2 (append_event run-000001 seq 1, agent writer): data.text: "hey" != "hi"',
        "    (a != b; the first 1 agree; a recorded 2, b 2)",
    ]


def test_a_long_string_is_shown_as_a_window_around_the_first_differing_character() -> None:
    changed = WORDS.replace("word150", "WORD150")
    lines = trace_divergence(
        [created(), step(1, {"text": WORDS})], [created(), step(1, {"text": changed})], "a", "b"
    )
    at = WORDS.index("word150") + 1
    assert lines == [
        f"  entry 2 (append_event run-000001 seq 1, agent writer): data.text, from character {at}:",
        '    a: …"word147 word148 word149 word150 word151 word152 "…',
        '    b: …"word147 word148 word149 WORD150 word151 word152 "…',
        "    (the first 1 agree; a recorded 2, b 2)",
    ]
    assert all(len(line) <= WIDTH for line in lines)


def test_a_value_deep_inside_lists_and_objects_is_named_by_its_path() -> None:
    ours = step(1, {"items": [{"name": "a"}, {"name": "b", "tags": ["x"]}]})
    theirs = step(1, {"items": [{"name": "a"}, {"name": "b", "tags": ["x", "y"]}]})
    (line, _) = trace_divergence([ours], [theirs], "a", "b")
    assert (
        line == '  entry 1 (append_event run-000001 seq 1): data.items[1].tags[1]: (missing) != "y"'
    )


def test_the_same_entries_in_another_order_are_reported_as_a_reordering() -> None:
    first, second = step(1, {"n": 1}), step(1, {"n": 2}, run_id="run-000002")
    publish = {"op": "publish", "run_id": "run-000001", "seq": 1, "type": "RunStep"}
    lines = trace_divergence(
        [created(), first, publish, second], [created(), second, publish, first], "a", "b"
    )
    assert lines == [
        "  reordered: both hold the same 4 entries, in another order (tasks or workers",
        "  interleaving differently?); the first pair that swapped:",
        "    a: entry 2 append_event run-000001 seq 1, agent writer",
        "       then entry 4 append_event run-000002 seq 1",
        "    b: entry 2 append_event run-000002 seq 1",
        "       then entry 4 append_event run-000001 seq 1, agent writer",
    ]


def test_one_entry_more_or_less_is_named_as_such() -> None:
    extra = {"op": "enqueue", "run_id": "run-000001"}
    more = trace_divergence([created()], [created(), extra], "a", "b")
    assert more == [
        "  entry 2: b has one entry more here:",
        '    {"op": "enqueue", "run_id": "run-000001"}',
        "    (the first 1 agree; a recorded 1, b 2)",
    ]
    less = trace_divergence(
        [created(), extra, created("run-000002")], [created(), created("run-000002")], "a", "b"
    )
    assert less == [
        "  entry 2: b lacks this entry of a:",
        '    {"op": "enqueue", "run_id": "run-000001"}',
        "    (the first 1 agree; a recorded 3, b 2)",
    ]


def test_entries_of_different_operations_are_shown_whole_and_bounded() -> None:
    lines = trace_divergence([step(1, {"text": WORDS})], [created()], "a", "b")
    assert lines[0] == "  entry 1 differs:"
    assert lines[3] == "    (none before it agree; a recorded 1, b 1)"
    assert lines[1].startswith('    a: {"data": {"text": "word0 word1')
    assert lines[2].startswith('    b: {"agent": "writer", "input": {}, "op": "create_run"')
    assert all(len(line) <= WIDTH for line in lines)


LONG_STORY_TEST = f"""
import pytest
from agents_run import register_agent, run_until_idle, start_run
from agents_run.application.agents import unregister_agent

RUNS = []

@pytest.fixture
def storyteller():
    @register_agent("storyteller")
    async def tell(input):
        RUNS.append(1)
        # The second run of the process changes one word in the middle of a long text.
        text = {WORDS!r}
        yield {{"text": text if len(RUNS) == 1 else text.replace("word150", "WORD150")}}

    yield "storyteller"
    unregister_agent("storyteller")

@pytest.mark.deterministic
async def test_story(storyteller):
    await start_run(storyteller, {{}})
    await run_until_idle()
"""


def test_a_divergence_inside_a_long_value_is_reported_by_its_path_in_short_lines(
    project: pytest.Pytester,
) -> None:
    project.makepyfile(test_story=LONG_STORY_TEST)
    result = project.runpytest("--repeat-deterministic=2", "-p", "no:randomly")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        [
            "non-deterministic: repeat 2 of 2 differs from repeat 1 of test_story.py::test_story",
            "  entry 5 (append_event run-000001 seq 2, agent storyteller): data.text, from "
            "character *",
            '    repeat 1: …"word147 word148 word149 word150 word151 word152 "…',
            '    repeat 2: …"word147 word148 word149 WORD150 word151 word152 "…',
            "    (the first 4 agree; repeat 1 recorded 10, repeat 2 10)",
            "rerun: pytest test_story.py::test_story --repeat-deterministic=2",
        ]
    )
    report = result.stdout.str()
    start = report.index("non-deterministic:")
    lines = report[start : report.index("rerun:")].splitlines()
    assert all(len(line) <= WIDTH for line in lines)


def test_the_rerun_line_carries_pytest_randomly_s_seed(project: pytest.Pytester) -> None:
    pytest.importorskip("pytest_randomly")
    project.makepyfile(test_story=LONG_STORY_TEST)
    result = project.runpytest("-p", "randomly", "--randomly-seed=7", "--repeat-deterministic=2")
    result.stdout.fnmatch_lines(
        ["rerun: pytest test_story.py::test_story --repeat-deterministic=2 --randomly-seed=7"]
    )


def test_trace_dir_holds_every_repeat_s_full_trace_named_in_the_report(
    project: pytest.Pytester,
) -> None:
    project.makepyfile(test_story=LONG_STORY_TEST)
    result = project.runpytest(
        "--repeat-deterministic=2", "-p", "no:randomly", "--agents-run-trace-dir=traces"
    )
    folder = project.path / "traces"
    files = sorted(path.name for path in folder.iterdir())
    assert files == [
        "test_story.py_test_story.repeat-1-of-2.json",
        "test_story.py_test_story.repeat-2-of-2.json",
    ]
    result.stdout.fnmatch_lines([f"traces: {folder / files[0]} {folder / files[1]}"])
    first, second = (json.loads((folder / name).read_text()) for name in files)
    assert [entry["op"] for entry in first] == [entry["op"] for entry in second]
    assert first[4]["data"]["text"] == WORDS
    text = (folder / files[0]).read_text()
    assert text.startswith('[\n  {"agent": "storyteller", "input": {}, "op": "create_run"')
    assert len(text.splitlines()) == len(first) + 2  # one entry a line


def test_two_runs_cancelled_in_another_order_are_a_reordering(project: pytest.Pytester) -> None:
    project.makepyfile(
        """
        import itertools
        import pytest
        from agents_run import cancel_run, run_until_idle, start_run

        REPEAT = itertools.count()

        @pytest.mark.deterministic
        async def test_cancel_both():
            runs = [await start_run("echo", {"text": "a"}), await start_run("echo", {"text": "b"})]
            if next(REPEAT) % 2:  # as if two tasks raced: the second repeat swaps them
                runs.reverse()
            for run_id in runs:
                await cancel_run(run_id)
            await run_until_idle()
        """
    )
    result = project.runpytest("--repeat-deterministic=2", "-p", "no:randomly")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        [
            "  reordered: both hold the same * entries, in another order (tasks or workers",
            "  interleaving differently?); the first pair that swapped:",
            "    repeat 1: entry * request_cancel run-000001, agent echo",
            "              then entry * request_cancel run-000002, agent echo",
            "    repeat 2: entry * request_cancel run-000002, agent echo",
            "              then entry * request_cancel run-000001, agent echo",
        ]
    )
