from __future__ import annotations

import pytest


def test_help_has_an_agents_run_group(project: pytest.Pytester) -> None:
    result = project.runpytest("--help")
    result.stdout.fnmatch_lines(
        [
            "agents-run: fresh infra per test, proof of determinism:",
            "  --repeat-deterministic=N*",
            "  --agents-run-strict-leaks*",
        ]
    )
    result.stdout.fnmatch_lines(
        ["  repeat_deterministic (string):*", "  agents_run_strict_leaks (bool):*"]
    )


def test_the_marker_is_listed_and_clean_under_strict_markers(project: pytest.Pytester) -> None:
    project.runpytest("--markers").stdout.fnmatch_lines(
        ["@pytest.mark.deterministic: this test must do the same on every repeat (agents-run)*"]
    )
    project.makepyfile(
        "import pytest\n\n@pytest.mark.deterministic\ndef test_x(infra):\n    pass\n"
    )
    result = project.runpytest("--strict-markers", "--repeat-deterministic=2")
    result.assert_outcomes(passed=2)


@pytest.mark.parametrize("value", ["0", "-1", "abc", "2.5", ""])
def test_a_bad_repeat_count_is_a_usage_error(project: pytest.Pytester, value: str) -> None:
    result = project.runpytest(f"--repeat-deterministic={value}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: --repeat-deterministic must be an int >= 1 (the number of runs of each "
            f"deterministic test; 1 means no repeats), got {value!r}"
        ]
    )


def test_a_bad_ini_repeat_count_is_a_usage_error(project: pytest.Pytester) -> None:
    project.makeini("[pytest]\nrepeat_deterministic = none\n")
    result = project.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: the repeat_deterministic ini setting must be an int >= 1 *, got 'none'"]
    )


def test_repeats_need_pytest_repeat(project: pytest.Pytester) -> None:
    result = project.runpytest("-p", "no:repeat", "--repeat-deterministic=2")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --repeat-deterministic needs the pytest-repeat plugin*"])


@pytest.mark.parametrize("marker", ["deterministic(3)", "deterministic(times=3)"])
def test_a_marker_with_arguments_is_a_collection_error(
    project: pytest.Pytester, marker: str
) -> None:
    project.makepyfile(
        test_marked=f"import pytest\n\n@pytest.mark.{marker}\ndef test_x(infra):\n    pass\n"
    )
    result = project.runpytest()
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(
        [
            "*ERROR collecting test_marked.py*",
            "test_marked.py::test_x: @pytest.mark.deterministic takes no arguments, got (*3); "
            "set the number of runs with --repeat-deterministic=N or the repeat_deterministic "
            "ini setting",
        ]
    )
