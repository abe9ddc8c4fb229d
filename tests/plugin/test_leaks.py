from __future__ import annotations

import pytest

# pytester runs in this process and inherits this project's "error" warning filter: let the
# projects it writes see InfraLeakWarning as a plain warning, as a default pytest set-up does.
pytestmark = pytest.mark.filterwarnings("default::pytest_agents_run.InfraLeakWarning")

LEAKY_TESTS = """
from agents_run import run_worker_once, start_run

async def test_leaves_a_queued_job(infra):
    await start_run("echo", {})

async def test_leaves_outbox_rows_and_an_open_subscription(infra):
    run_id = await start_run("echo", {"text": "a"})
    await run_worker_once()
    subscription = await infra.bus.subscribe(run_id)  # never closed
"""


def test_a_passing_test_that_leaves_work_gets_a_warning_saying_what(
    project: pytest.Pytester,
) -> None:
    project.makepyfile(LEAKY_TESTS)
    result = project.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=2, warnings=2)
    result.stdout.fnmatch_lines(
        [
            "*InfraLeakWarning: test_a_passing_test_that_leaves_work_gets_a_warning_saying_what.py"
            "::test_leaves_a_queued_job left work in its infra: 1 job not done (1 waiting, "
            "0 active; run them: await run_until_idle())",
            "*::test_leaves_outbox_rows_and_an_open_subscription left work in its infra: "
            "3 outbox rows unpublished (await publish_pending_outbox_events_once()); "
            "1 subscription open on run-000001 (read the stream to its end, or close it: "
            "contextlib.aclosing(stream_run(...)))",
        ]
    )


def test_the_warning_points_at_the_test_and_can_be_filtered_per_test(
    project: pytest.Pytester,
) -> None:
    project.makepyfile(
        test_marked="""
        import pytest
        from agents_run import start_run

        @pytest.mark.filterwarnings("ignore::pytest_agents_run.InfraLeakWarning")
        async def test_leaves_work_on_purpose(infra):
            await start_run("echo", {})

        async def test_leaves_work(infra):
            await start_run("echo", {})
        """
    )
    result = project.runpytest()
    result.assert_outcomes(passed=2, warnings=1)
    result.stdout.fnmatch_lines(["*test_marked.py:8: InfraLeakWarning: *::test_leaves_work left*"])


def test_a_test_that_cleans_up_or_fails_gets_no_leak_report(project: pytest.Pytester) -> None:
    project.makepyfile(
        """
        from contextlib import aclosing
        from agents_run import run_until_idle, start_run, stream_run

        async def test_clean(infra):
            run_id = await start_run("echo", {"text": "a b"})
            await run_until_idle()
            async with aclosing(stream_run(run_id)) as stream:
                await anext(stream)

        async def test_fails_first(infra):
            await start_run("echo", {})
            assert False, "its own failure says what went wrong"
        """
    )
    result = project.runpytest("-W", "error::pytest_agents_run.InfraLeakWarning")
    result.assert_outcomes(passed=1, failed=1)


def test_strict_leaks_option_makes_a_leak_an_error(project: pytest.Pytester) -> None:
    project.makepyfile(LEAKY_TESTS)
    result = project.runpytest("--agents-run-strict-leaks", "-p", "no:randomly")
    result.assert_outcomes(passed=2, errors=2)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*::test_leaves_a_queued_job left work in its infra: 1 job not done*"
            "(an error under the strict leak check)",
            "*::test_leaves_outbox_rows_and_an_open_subscription left work in its infra: 3 outbox "
            "rows unpublished*; 1 subscription open on run-000001*"
            "(an error under the strict leak check)",
        ]
    )


def test_strict_leaks_ini_setting_makes_a_leak_an_error(project: pytest.Pytester) -> None:
    project.makeini(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
        "agents_run_strict_leaks = true\n"
    )
    project.makepyfile(LEAKY_TESTS)
    result = project.runpytest()
    result.assert_outcomes(passed=2, errors=2)
    result.stdout.fnmatch_lines(["*(an error under the strict leak check)*"])
