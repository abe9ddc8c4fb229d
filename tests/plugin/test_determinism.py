from __future__ import annotations

import pytest

# An agent whose step depends on random state: the classic non-deterministic test.
DICE_TEST = """
import random
import pytest
from agents_run import register_agent, run_until_idle, start_run

@pytest.fixture
def dice():
    @register_agent("dice")  # the plugin unregisters it after the test
    async def roll(input):
        yield {"roll": random.randint(1, 10**9)}

    return "dice"

@pytest.mark.deterministic
async def test_roll(dice):  # no infra argument: a deterministic test gets fresh infra anyway
    await start_run(dice, {})
    await run_until_idle()
"""


def test_a_deterministic_test_runs_n_times_each_with_fresh_infra(project: pytest.Pytester) -> None:
    project.makepyfile(
        """
        import pytest
        from agents_run import get_infra, run_until_idle, start_run

        @pytest.mark.deterministic
        async def test_echo():
            assert await start_run("echo", {"text": "a b"}) == "run-000001"
            await run_until_idle()
            assert get_infra().store.run_ids() == ["run-000001"]

        async def test_not_marked(infra):
            await start_run("echo", {})
            await run_until_idle()
        """
    )
    result = project.runpytest("--repeat-deterministic=3", "-v", "-p", "no:randomly")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(
        [
            "*::test_echo[[]1-3] PASSED*",
            "*::test_echo[[]2-3] PASSED*",
            "*::test_echo[[]3-3] PASSED*",
            "*::test_not_marked PASSED*",
            "agents-run: 1 deterministic test, 3 runs, 0 divergences",
        ]
    )


@pytest.mark.parametrize(
    ("ini", "args", "runs"),
    [
        ("", [], 1),
        ("repeat_deterministic = 2", [], 2),
        ("repeat_deterministic = 2", ["--repeat-deterministic=4"], 4),
        ("repeat_deterministic = 5", ["--repeat-deterministic=1"], 1),
    ],
)
def test_the_option_overrides_the_ini_setting_and_1_means_no_repeats(
    project: pytest.Pytester, ini: str, args: list[str], runs: int
) -> None:
    project.makeini(
        f"[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n{ini}\n"
    )
    project.makepyfile(
        "import pytest\n\n@pytest.mark.deterministic\ndef test_x(infra):\n    pass\n"
    )
    result = project.runpytest(*args, "--collect-only", "-q")
    expected = ["test_*.py::test_x"] if runs == 1 else [f"*::test_x[[]*-{runs}]"] * runs
    result.stdout.fnmatch_lines([*expected, f"{runs} test* collected*"])


def test_a_random_test_is_caught_with_the_repeat_and_the_path_of_the_first_difference(
    project: pytest.Pytester,
) -> None:
    project.makepyfile(test_dice=DICE_TEST)
    result = project.runpytest("--repeat-deterministic=3", "-p", "no:randomly")
    result.assert_outcomes(passed=3, errors=2)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_roll[[]2-3]*",
            "non-deterministic: repeat 2 of 3 differs from repeat 1 of test_dice.py::test_roll",
            "  entry 5 (append_event run-000001 seq 2, agent dice): data.roll: * != *",
            "    (repeat 1 != repeat 2; the first 4 agree; repeat 1 recorded 10, repeat 2 10)",
            "rerun: pytest test_dice.py::test_roll --repeat-deterministic=3",
            "*ERROR at teardown of test_roll[[]3-3]*",
            "non-deterministic: repeat 3 of 3 differs from repeat 1 of test_dice.py::test_roll",
            "agents-run: 1 deterministic test, 3 runs, 2 divergences",
            "ERROR test_dice.py::test_roll[[]2-3] - non-deterministic: repeat 2 of 3 differs*",
            "ERROR test_dice.py::test_roll[[]3-3] - non-deterministic: repeat 3 of 3 differs*",
        ]
    )


def test_a_repeat_whose_outcome_differs_is_caught(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_flaky="""
        import pytest

        runs = []

        @pytest.mark.deterministic
        def test_flaky():
            runs.append(1)
            assert len(runs) != 2
        """
    )
    result = project.runpytest("--repeat-deterministic=3", "-p", "no:randomly")
    result.assert_outcomes(passed=2, failed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "non-deterministic: repeat 2 of 3 differs from repeat 1 of test_flaky.py::test_flaky",
            "  outcome: repeat 1 passed, repeat 2 failed in call",
        ]
    )


def test_the_normalize_hook_masks_volatile_fields_and_drops_entries(
    project: pytest.Pytester,
) -> None:
    project.makeconftest(
        """
        def pytest_agents_run_normalize_trace_entry(entry, item):
            if entry["op"] == "create_run":
                entry["input"]["token"] = "<token>"
            if entry["op"] == "subscribe":
                entry.clear()
        """
    )
    project.makepyfile(
        test_token="""
        import random
        import pytest
        from agents_run import run_until_idle, start_run

        @pytest.mark.deterministic
        async def test_token(infra):
            await start_run("echo", {"token": random.random()})
            if random.random() < 0.5:
                await infra.bus.aclose()  # closes nothing, but may subscribe below
            else:
                await (await infra.bus.subscribe("run-000001")).aclose()
            await run_until_idle()
        """
    )
    result = project.runpytest("--repeat-deterministic=4")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["agents-run: 1 deterministic test, 4 runs, 0 divergences"])


@pytest.mark.parametrize("dist", ["load", "loadgroup"])
def test_repeats_on_different_xdist_workers_are_compared_on_the_controller(
    project: pytest.Pytester, dist: str
) -> None:
    project.makepyfile(
        test_dice=DICE_TEST.replace(
            "@pytest.mark.deterministic\n",
            '@pytest.mark.deterministic\n@pytest.mark.xdist_group("dice")\n',
        ),
        test_calm="""
        import pytest
        from agents_run import run_until_idle, start_run

        @pytest.mark.deterministic
        @pytest.mark.parametrize("text", ["a", "b c"])
        async def test_echo(text):
            await start_run("echo", {"text": text})
            await run_until_idle()
        """,
    )
    result = project.runpytest_subprocess("-n", "2", f"--dist={dist}", "--repeat-deterministic=3")
    result.assert_outcomes(passed=9, errors=2)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "non-deterministic: repeat ? of 3 differs from repeat ? of test_dice.py::test_roll*",
            "  entry 5 (append_event run-000001 seq 2, agent dice): data.roll: * != *",
            "agents-run: 3 deterministic tests, 9 runs, 2 divergences",
        ]
    )


def test_pytest_randomly_beside_it_exposes_a_test_that_uses_random_state(
    project: pytest.Pytester,
) -> None:
    pytest.importorskip("pytest_randomly")
    project.makepyfile(
        test_random="""
        import random
        import pytest
        from agents_run import run_until_idle, start_run

        @pytest.mark.deterministic
        async def test_uses_random(infra):
            await start_run("echo", {"text": str(random.random())})
            await run_until_idle()

        @pytest.mark.deterministic
        async def test_calm(infra):
            await start_run("echo", {"text": "calm"})
            await run_until_idle()
        """
    )
    result = project.runpytest("-p", "randomly", "--randomly-seed=7", "--repeat-deterministic=3")
    result.assert_outcomes(passed=6, errors=2)
    result.stdout.fnmatch_lines(
        [
            "Using --randomly-seed=7",
            "non-deterministic: repeat ? of 3 differs from repeat ? of "
            "test_random.py::test_uses_random",
            "  entry 1 (create_run run-000001, agent echo): input.text:",
            '    repeat ?: "0.*"',
            '    repeat ?: "0.*"',
            "rerun: pytest test_random.py::test_uses_random --repeat-deterministic=3 "
            "--randomly-seed=7",
        ]
    )


def test_the_trace_does_not_leak_into_junit_xml(project: pytest.Pytester) -> None:
    project.makepyfile(
        "import pytest\n\n@pytest.mark.deterministic\ndef test_x(infra):\n    pass\n"
    )
    result = project.runpytest("--repeat-deterministic=2", "--junitxml=report.xml")
    result.assert_outcomes(passed=2)
    assert "agents_run" not in (project.path / "report.xml").read_text()


@pytest.mark.parametrize(
    ("args", "mark"),
    [(["--count=2"], ""), ([], "@pytest.mark.repeat(2)\n")],
    ids=["--count", "repeat marker"],
)
def test_repeats_made_by_pytest_repeat_itself_are_compared_too(
    project: pytest.Pytester, args: list[str], mark: str
) -> None:
    project.makepyfile(
        test_dice=DICE_TEST.replace(
            "@pytest.mark.deterministic\n", f"@pytest.mark.deterministic\n{mark}"
        )
    )
    result = project.runpytest(*args)
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["agents-run: 1 deterministic test, 2 runs, 1 divergence"])


def test_a_divergence_in_a_repeat_that_already_failed_at_teardown_is_added_to_its_error(
    project: pytest.Pytester,
) -> None:
    project.makepyfile(
        test_leaky_dice="""
        import random
        import pytest
        from agents_run import start_run

        @pytest.mark.deterministic
        async def test_roll():
            await start_run("echo", {"text": str(random.random())})  # and leaves its job
        """
    )
    result = project.runpytest(
        "--repeat-deterministic=2", "--agents-run-strict-leaks", "-p", "no:randomly"
    )
    result.assert_outcomes(passed=2, errors=2)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_roll[[]2-2]*",
            "*::test_roll[[]2-2] left work in its infra: 1 job not done*",
            "*- agents-run determinism -*",
            "non-deterministic: repeat 2 of 2 differs from repeat 1 of "
            "test_leaky_dice.py::test_roll",
            "agents-run: 1 deterministic test, 2 runs, 1 divergence",
        ]
    )


def test_a_normalize_hook_that_makes_an_entry_not_json_fails_that_teardown(
    project: pytest.Pytester,
) -> None:
    project.makeconftest(
        """
        def pytest_agents_run_normalize_trace_entry(entry, item):
            entry["seen"] = {1, 2}
        """
    )
    project.makepyfile(
        """
        import pytest
        from agents_run import run_until_idle, start_run

        @pytest.mark.deterministic
        async def test_echo():
            await start_run("echo", {})
            await run_until_idle()
        """
    )
    result = project.runpytest()
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*TypeError: agents-run: a trace entry is not JSON (Object of type set is not JSON "
            "serializable); a pytest_agents_run_normalize_trace_entry implementation must keep "
            "entries JSON"
        ]
    )
