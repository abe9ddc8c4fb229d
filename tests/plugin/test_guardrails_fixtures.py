"""The run-time half of the guardrail: an integration test that gets a unit-test double through a
fixture fails, though it imports nothing (which the import contract cannot see).

These projects have a ``tests`` package of their own, so pytest runs in a subprocess (in process,
this suite's own ``tests`` package would be found instead).
"""

from __future__ import annotations

import pytest

SETTINGS = """
[pytest]
agents_run_unit_mocks = tests/unit/mocks
agents_run_integration_tests =
    tests/integration
    tests/e2e
"""

LLM_MOCK = """
import pytest

class FakeLLM:
    def complete(self, prompt):
        return "ok"

@pytest.fixture
def fake_llm():
    return FakeLLM()
"""

# The hole in the import contract: the root conftest hands the double out to every test.
ROOT_CONFTEST = """
from tests.unit.mocks.llm import fake_llm  # noqa: F401 - shared as a fixture
"""


def make_project(pytester: pytest.Pytester, ini: str = SETTINGS, **tests: str) -> None:
    pytester.makeini(ini)
    for folder in ("tests", "tests/unit", "tests/unit/mocks", "tests/integration"):
        pytester.mkpydir(folder)
    pytester.makepyfile(
        **{
            "tests/unit/mocks/llm": LLM_MOCK,
            "tests/conftest": ROOT_CONFTEST,
            "tests/unit/test_prompt": "def test_prompt(fake_llm):\n    fake_llm.complete('hi')\n",
        },
        **{f"tests/integration/{name}": text for name, text in tests.items()},
    )


def test_an_integration_test_using_a_fixture_from_unit_mocks_fails_naming_it(
    pytester: pytest.Pytester,
) -> None:
    make_project(pytester, test_llm="def test_answer(fake_llm):\n    fake_llm.complete('hi')\n")
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=1, errors=1)  # the unit test may use its doubles
    result.stdout.fnmatch_lines(
        [
            "*agents-run guardrails: tests/integration/test_llm.py::test_answer uses the fixture "
            "'fake_llm', defined at tests/unit/mocks/llm.py:*, which is a unit-test double.",
            "The rule: integration and end-to-end tests (tests/integration, tests/e2e) never use "
            "the unit tests' doubles (tests/unit/mocks), neither by import nor through a fixture;"
            " set by the ini settings agents_run_unit_mocks and agents_run_integration_tests "
            "(agents-run guardrails init).",
            "Use the real adapter through the infra fixture, or move the test to the unit tests.",
        ]
    )


def test_a_fixture_reached_through_other_fixtures_is_named_with_the_chain(
    pytester: pytest.Pytester,
) -> None:
    make_project(
        pytester,
        conftest="import pytest\n\n@pytest.fixture\ndef client(fake_llm):\n    return fake_llm\n",
        test_client="def test_client(client):\n    pass\n",
    )
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        ["*uses the fixture 'fake_llm' (through client -> fake_llm), defined at tests/unit/*"]
    )


def test_a_double_made_by_a_fixture_defined_elsewhere_is_caught_by_its_class(
    pytester: pytest.Pytester,
) -> None:
    make_project(
        pytester,
        conftest=(
            "import pytest\nfrom tests.unit.mocks.llm import FakeLLM\n\n"
            "@pytest.fixture\ndef llm():\n    return FakeLLM()\n"
        ),
        test_llm="def test_llm(llm):\n    pass\n",
    )
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*tests/integration/test_llm.py::test_llm uses the fixture 'llm', defined at "
            "tests/integration/conftest.py:*, which gives it a tests.unit.mocks.llm.FakeLLM, a "
            "unit-test double.",
        ]
    )


def test_an_integration_test_importing_a_double_fails_too(pytester: pytest.Pytester) -> None:
    make_project(
        pytester,
        test_llm=(
            "from tests.unit.mocks.llm import FakeLLM\n\n"
            "def test_llm():\n    assert FakeLLM().complete('hi') == 'ok'\n"
        ),
    )
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*agents-run guardrails: tests/integration/test_llm.py::test_llm: its module imports "
            "FakeLLM (tests.unit.mocks.llm.FakeLLM), a unit-test double.",
            "The rule: integration and end-to-end tests*",
        ]
    )


def test_integration_tests_with_their_own_fixtures_pass(pytester: pytest.Pytester) -> None:
    make_project(
        pytester,
        conftest="import pytest\n\n@pytest.fixture\ndef llm():\n    return object()\n",
        test_llm="def test_llm(llm, infra):\n    pass\n",
    )
    pytester.runpytest_subprocess("-p", "no:randomly").assert_outcomes(passed=2)


def test_the_check_is_off_where_nothing_is_configured(pytester: pytest.Pytester) -> None:
    make_project(pytester, ini="[pytest]\n", test_llm="def test_answer(fake_llm):\n    pass\n")
    pytester.runpytest_subprocess("-p", "no:randomly").assert_outcomes(passed=2)


def test_the_check_holds_under_xdist(pytester: pytest.Pytester) -> None:
    make_project(
        pytester,
        test_llm="def test_answer(fake_llm):\n    pass\n\ndef test_plain():\n    pass\n",
    )
    result = pytester.runpytest_subprocess("-n", "2", "-p", "no:randomly")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*test_llm.py::test_answer uses the fixture 'fake_llm'*"])
