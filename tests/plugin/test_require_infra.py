"""``--agents-run-require-infra``: no test escapes its infra into the process-wide default."""

from __future__ import annotations

import pytest

FORGETFUL = """
from agents_run import run_until_idle, start_run

async def test_forgets_the_fixture():
    await start_run("echo", {"text": "a"})
    await run_until_idle()

async def test_asks_for_it(infra):
    await start_run("echo", {"text": "a"})
    await run_until_idle()
"""


def test_a_test_without_the_infra_fixture_fails_saying_how_to_fix_it(
    project: pytest.Pytester,
) -> None:
    project.makepyfile(FORGETFUL)
    result = project.runpytest("--agents-run-require-infra", "-p", "no:randomly")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*InfraNotRequested: test_a_test_without_the_infra_fixture_fails_saying_how_to_fix_it"
            ".py::test_forgets_the_fixture reached get_infra() (directly, or through start_run, "
            "run_until_idle, ...) without the infra fixture, so it would share the process-wide "
            "default infrastructure: add an `infra` argument to the test (or to the fixture that "
            "uses it), or mark it @pytest.mark.usefixtures('infra') (--agents-run-require-infra "
            "/ agents_run_require_infra)",
        ]
    )


@pytest.mark.parametrize(
    ("ini", "args", "failed"),
    [
        ("", (), 0),  # off by default: the test shares the process default, as before
        ("agents_run_require_infra = true", (), 1),
        ("agents_run_require_infra = false", ("--agents-run-require-infra",), 1),
    ],
)
def test_the_ini_setting_turns_it_on_and_the_option_wins(
    project: pytest.Pytester, ini: str, args: tuple[str, ...], failed: int
) -> None:
    project.makeini(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n" + ini
    )
    project.makepyfile(FORGETFUL)
    project.runpytest(*args, "-p", "no:randomly").assert_outcomes(passed=2 - failed, failed=failed)


def test_the_error_fails_the_test_even_where_the_code_swallows_it(
    project: pytest.Pytester,
) -> None:
    project.makepyfile(
        """
        from agents_run import get_infra

        def test_swallows():
            try:
                get_infra()
            except Exception:
                pass  # a broad handler in the code under test
        """
    )
    result = project.runpytest("--agents-run-require-infra", "-p", "no:randomly")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*test_swallows reached get_infra()*without the infra fixture*"])


def test_a_fixture_set_up_before_infra_is_named_as_the_cause(project: pytest.Pytester) -> None:
    project.makepyfile(
        """
        import pytest
        from agents_run import get_infra

        @pytest.fixture
        def store():
            return get_infra().store  # before the infra fixture: the default's store

        def test_uses_both(store, infra):
            pass
        """
    )
    result = project.runpytest("--agents-run-require-infra", "-p", "no:randomly")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*get_infra() was called while the infra fixture was not set: by a fixture set up "
            "before it (or torn down after it); make that fixture request infra*"
        ]
    )


def test_a_test_that_chooses_its_own_infra_is_not_an_escape(project: pytest.Pytester) -> None:
    project.makepyfile(
        """
        from agents_run import Infra, get_infra, use_infra

        def test_own():
            with use_infra(Infra.in_memory()) as mine:
                assert get_infra() is mine
        """
    )
    project.runpytest("--agents-run-require-infra", "-p", "no:randomly").assert_outcomes(passed=1)


def test_it_holds_under_xdist(project: pytest.Pytester) -> None:
    project.makepyfile(FORGETFUL)
    result = project.runpytest_subprocess(
        "--agents-run-require-infra", "-n", "2", "-p", "no:randomly"
    )
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*test_forgets_the_fixture reached get_infra()*"])
