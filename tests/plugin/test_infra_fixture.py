from __future__ import annotations

import pytest


def test_each_test_gets_fresh_infra_that_get_infra_returns(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_start="""
        import pytest
        from agents_run import get_infra, run_until_idle, start_run

        @pytest.mark.parametrize("attempt", [1, 2, 3])
        async def test_start(infra, attempt):
            assert get_infra() is infra
            assert await start_run("echo", {}) == "run-000001"
            await run_until_idle()
        """
    )
    project.runpytest("test_start.py").assert_outcomes(passed=3)


def test_infra_is_reset_after_a_failing_test_and_after_a_failing_setup(
    project: pytest.Pytester,
) -> None:
    project.makepyfile(
        """
        import pytest
        from agents_run import get_infra, start_run

        seen = []

        async def test_fails_holding_a_run(infra):
            seen.append(infra)
            await start_run("echo", {})
            assert False, "the test fails"

        @pytest.fixture
        def broken(infra):
            seen.append(infra)
            raise RuntimeError("setup fails")

        def test_setup_fails(broken):
            pass

        def test_afterwards_the_default_is_fresh():
            current = get_infra()
            assert all(current is not earlier for earlier in seen)
            assert current.store.run_ids() == []
        """
    )
    result = project.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=1, failed=1, errors=1)


def test_the_recorded_infra_keeps_the_adapters_helpers_and_types(project: pytest.Pytester) -> None:
    project.makepyfile(
        """
        from agents_run import InMemoryEventBus, InMemoryQueue, publish_pending_outbox_events_once
        from agents_run import run_worker_once, start_run

        async def test_helpers(infra):
            assert isinstance(infra.bus, InMemoryEventBus)
            assert isinstance(infra.queue, InMemoryQueue)
            run_id = await start_run("echo", {"text": "a"})
            await run_worker_once()
            await publish_pending_outbox_events_once()
            assert [(e.run_id, e.seq) for e in infra.bus.published] == [
                (run_id, 1), (run_id, 2), (run_id, 3)
            ]
        """
    )
    project.runpytest().assert_outcomes(passed=1)


def test_every_async_style_sees_the_infra(project: pytest.Pytester) -> None:
    project.makepyfile(
        """
        import asyncio
        import pytest
        from agents_run import get_infra, run_until_idle, start_run

        async def use(infra):
            assert get_infra() is infra
            run_id = await start_run("echo", {"text": "a b"})
            await run_until_idle()
            assert [e.type for e in await infra.store.read_events(run_id)][-1] == "RunFinished"

        def test_sync_with_asyncio_run(infra):
            asyncio.run(use(infra))

        async def test_pytest_asyncio_auto_mode(infra):
            await use(infra)

        @pytest.mark.asyncio
        async def test_pytest_asyncio_marked(infra):
            await use(infra)

        @pytest.fixture
        def anyio_backend():
            return "asyncio"

        @pytest.mark.anyio
        async def test_anyio(infra):
            await use(infra)

        @pytest.mark.anyio
        async def test_anyio_again(infra):
            await use(infra)
        """
    )
    project.runpytest().assert_outcomes(passed=5)


def test_pytest_asyncio_strict_mode(pytester: pytest.Pytester) -> None:
    pytester.makeini(
        "[pytest]\nasyncio_mode = strict\nasyncio_default_fixture_loop_scope = function\n"
    )
    pytester.makepyfile(
        """
        import pytest
        from agents_run import get_infra, run_until_idle, start_run

        @pytest.mark.asyncio
        async def test_strict(infra):
            assert get_infra() is infra
            await start_run("echo", {})
            await run_until_idle()
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_a_conftest_hook_supplies_the_infra(project: pytest.Pytester) -> None:
    project.makeconftest(
        """
        from agents_run import Infra, InMemoryEventBus, InMemoryQueue, InMemoryRunStore
        from agents_run import SequentialIds

        made = []

        def pytest_agents_run_make_infra(request):
            infra = Infra(
                bus=InMemoryEventBus(),
                queue=InMemoryQueue(),
                store=InMemoryRunStore(),
                ids=SequentialIds(prefix=request.node.name + "-"),
            )
            made.append(infra)
            return infra
        """
    )
    project.makepyfile(
        """
        from agents_run import get_infra, run_until_idle, start_run
        from conftest import made

        async def test_custom(infra):
            assert get_infra() is infra
            assert infra.ids is made[-1].ids
            assert await start_run("echo", {}) == "test_custom-000001"
            await run_until_idle()
        """
    )
    project.runpytest().assert_outcomes(passed=1)


def test_a_hook_that_returns_none_leaves_the_choice_to_the_default(
    project: pytest.Pytester,
) -> None:
    project.makeconftest(
        """
        def pytest_agents_run_make_infra(request):
            return None
        """
    )
    project.makepyfile(
        """
        from agents_run import InMemoryRunStore

        def test_default(infra):
            assert isinstance(infra.store, InMemoryRunStore)
        """
    )
    project.runpytest().assert_outcomes(passed=1)


def test_a_conftest_hook_applies_to_its_own_folder_only(project: pytest.Pytester) -> None:
    project.makepyfile(
        **{
            "special/conftest.py": """
                from agents_run import Infra, InMemoryEventBus, InMemoryQueue, InMemoryRunStore
                from agents_run import SequentialIds

                def pytest_agents_run_make_infra(request):
                    return Infra(
                        bus=InMemoryEventBus(), queue=InMemoryQueue(), store=InMemoryRunStore(),
                        ids=SequentialIds(prefix="special-"),
                    )
            """,
            "special/test_special.py": """
                def test_special(infra):
                    assert infra.ids.new_run_id() == "special-000001"
            """,
            "test_plain.py": """
                def test_plain(infra):
                    assert infra.ids.new_run_id() == "run-000001"
            """,
        }
    )
    project.runpytest().assert_outcomes(passed=2)


def test_a_hook_that_returns_something_else_is_a_clear_setup_error(
    project: pytest.Pytester,
) -> None:
    project.makeconftest(
        """
        def pytest_agents_run_make_infra(request):
            return {"bus": None}
        """
    )
    project.makepyfile("def test_x(infra): pass")
    result = project.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*TypeError: pytest_agents_run_make_infra must return an agents_run.Infra, got dict"]
    )


def test_a_hook_that_builds_infra_like_production_still_gets_repeatable_ids_and_time(
    project: pytest.Pytester,
) -> None:
    # load_infra_from_config on a real store, and Infra(...) by hand, both get random ids and
    # the system clock; the fixture replaces them, so repeats compare.
    project.makeconftest(
        """
        from agents_run import Infra, InMemoryEventBus, InMemoryQueue, InMemoryRunStore
        from agents_run import load_infra_from_config

        def pytest_agents_run_make_infra(request):
            if "sqlite" in request.node.name:
                path = request.getfixturevalue("tmp_path") / "runs.db"
                return load_infra_from_config({"AGENTS_RUN_STORE_URL": f"sqlite:///{path}"})
            return Infra(bus=InMemoryEventBus(), queue=InMemoryQueue(), store=InMemoryRunStore())
        """
    )
    project.makepyfile(
        """
        import pytest
        from agents_run import ManualClock, SequentialIds, run_until_idle, start_run

        @pytest.mark.deterministic
        @pytest.mark.parametrize("made", ["by_hand", "sqlite"])
        async def test_ids_and_time_repeat(infra, made):
            assert isinstance(infra.ids, SequentialIds)
            assert isinstance(infra.clock, ManualClock)
            assert await start_run("echo", {"text": "a b"}) == "run-000001"
            await run_until_idle()
            assert (await infra.store.get_run("run-000001")).updated_at == infra.clock.now()
        """
    )
    result = project.runpytest("--repeat-deterministic=3")
    result.assert_outcomes(passed=6)
    result.stdout.fnmatch_lines(["agents-run: 2 deterministic tests, 6 runs, 0 divergences"])


def test_a_hook_keeps_production_ids_and_time_with_keep_ids_and_clock(
    project: pytest.Pytester,
) -> None:
    project.makeconftest(
        """
        from agents_run import Infra, InMemoryEventBus, InMemoryQueue, InMemoryRunStore
        from pytest_agents_run import keep_ids_and_clock

        def pytest_agents_run_make_infra(request):
            return keep_ids_and_clock(
                Infra(bus=InMemoryEventBus(), queue=InMemoryQueue(), store=InMemoryRunStore())
            )
        """
    )
    project.makepyfile(
        """
        from datetime import UTC, datetime
        from agents_run.ids_and_time import RandomIds, SystemClock

        def test_real_ids_and_time(infra):
            assert isinstance(infra.ids, RandomIds)
            assert isinstance(infra.clock, SystemClock)
            assert infra.ids.new_run_id() != infra.ids.new_run_id()
            before = datetime.now(UTC)
            assert before <= infra.clock.now() <= datetime.now(UTC)
        """
    )
    project.runpytest().assert_outcomes(passed=1)
