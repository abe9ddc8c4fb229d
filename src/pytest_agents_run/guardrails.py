"""The run-time guardrails: no integration test gets a unit-test double through a fixture, and
(where required) no test uses infrastructure it did not ask for.

The import contract that ``agents-run guardrails init`` writes sees imports only; a double made
in a unit-mocks module and handed out as a fixture reaches a test with no import at all, so the
plugin checks the fixtures themselves: where each is defined, and what it gave the test.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pytest_agents_run.session import REQUIRE_INFRA_INI

UNIT_MOCKS_INI = "agents_run_unit_mocks"
INTEGRATION_INI = "agents_run_integration_tests"


def add_options(parser: pytest.Parser, group: pytest.OptionGroup) -> None:
    group.addoption(
        "--agents-run-require-infra",
        dest="agents_run_require_infra",
        action="store_true",
        default=None,
        help="fail a test that reaches get_infra() without requesting the infra fixture "
        "(it would share the process-wide default infrastructure).",
    )
    parser.addini(
        REQUIRE_INFRA_INI,
        "agents-run: get_infra() during a test without the infra fixture is an error.",
        type="bool",
        default=False,
    )
    parser.addini(
        UNIT_MOCKS_INI,
        "agents-run: the unit tests' doubles (folders or .py modules); integration tests may "
        "not use fixtures defined there (written by agents-run guardrails init).",
        type="paths",
        default=[],
    )
    parser.addini(
        INTEGRATION_INI,
        f"agents-run: the folders of integration and end-to-end tests that {UNIT_MOCKS_INI} "
        "applies to (written by agents-run guardrails init).",
        type="paths",
        default=[],
    )


def configure(config: pytest.Config) -> None:
    """Register the checks that the settings turn on; none where nothing is configured."""
    mocks = tuple(Path(path) for path in config.getini(UNIT_MOCKS_INI))
    integration = tuple(Path(path) for path in config.getini(INTEGRATION_INI))
    if mocks and integration:
        config.pluginmanager.register(FixtureGuard(mocks, integration), "agents-run-fixture-guard")
    option = config.getoption("agents_run_require_infra")
    if config.getini(REQUIRE_INFRA_INI) if option is None else option:
        # Imported only here: it brings in agents_run.
        from pytest_agents_run.require_infra import InfraGuard  # noqa: PLC0415

        config.pluginmanager.register(InfraGuard(), "agents-run-infra-guard")


def _shown(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


@dataclass(frozen=True)
class _Found:
    fixture: str
    chain: list[str]  # from a fixture the test requests down to ``fixture``
    where: str
    gives: str | None = None  # the double's qualified name, where the value gave it away


@dataclass(eq=False)  # a plugin must stay hashable
class FixtureGuard:
    """Fails an integration test whose fixtures (directly or through other fixtures) are
    defined in a unit-mocks module, or give it an object of one."""

    unit_mocks: tuple[Path, ...]
    integration: tuple[Path, ...]

    @pytest.hookimpl(tryfirst=True)  # before any fixture is set up
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        if isinstance(item, pytest.Function) and self._applies_to(item):
            self._check_imports(item)
            for chain, fixturedef in _closure(item):
                where = _definition(fixturedef)
                if where is not None and self._is_mock(where[0]):
                    self._fail(item, _Found(chain[-1], chain, self._place(item, *where)))

    @pytest.hookimpl(tryfirst=True)  # fixtures are set up, the test has not started
    def pytest_runtest_call(self, item: pytest.Item) -> None:
        if isinstance(item, pytest.Function) and self._applies_to(item):
            for chain, fixturedef in _closure(item):
                cached = getattr(fixturedef, "cached_result", None)
                gives = _double_in(cached[0]) if cached else None
                if gives is not None and self._is_mock(gives[1]):
                    where = _definition(fixturedef)
                    place = self._place(item, *where) if where else "?"
                    self._fail(item, _Found(chain[-1], chain, place, gives[0]))

    def _check_imports(self, item: pytest.Function) -> None:
        """The test's module holds a double it imported (what lint-imports reports too)."""
        for name, value in vars(item.module).items():
            found = _double_in(value) if not inspect.ismodule(value) else _module_file(value)
            if found is not None and self._is_mock(found[1]):
                pytest.fail(
                    f"agents-run guardrails: {item.nodeid}: its module imports {name} "
                    f"({found[0]}), a unit-test double.\n{self._rule(item)}",
                    pytrace=False,
                )

    def _applies_to(self, item: pytest.Function) -> bool:
        return any(item.path.is_relative_to(folder) for folder in self.integration)

    def _is_mock(self, path: Path) -> bool:
        return any(path == mocks or path.is_relative_to(mocks) for mocks in self.unit_mocks)

    @staticmethod
    def _place(item: pytest.Item, path: Path, line: int) -> str:
        return f"{_shown(path, item.config.rootpath)}:{line}"

    def _fail(self, item: pytest.Item, found: _Found) -> None:
        through = f" (through {' -> '.join(found.chain)})" if len(found.chain) > 1 else ""
        what = (
            f"gives it a {found.gives}, a unit-test double"
            if found.gives
            else "is a unit-test double"
        )
        pytest.fail(
            f"agents-run guardrails: {item.nodeid} uses the fixture {found.fixture!r}{through}, "
            f"defined at {found.where}, which {what}.\n{self._rule(item)}",
            pytrace=False,
        )

    def _rule(self, item: pytest.Item) -> str:
        root = item.config.rootpath
        return (
            f"The rule: integration and end-to-end tests "
            f"({', '.join(_shown(path, root) for path in self.integration)}) never use the unit "
            f"tests' doubles ({', '.join(_shown(path, root) for path in self.unit_mocks)}), "
            "neither by import nor through a fixture; set by the ini settings "
            f"{UNIT_MOCKS_INI} and {INTEGRATION_INI} (agents-run guardrails init).\n"
            "Use the real adapter through the infra fixture, or move the test to the unit tests."
        )


def _closure(item: pytest.Function) -> Generator[tuple[list[str], Any], None, None]:
    """Every fixture definition the test's setup uses, with the chain of names that leads to it
    from a fixture the test requests (breadth first: the shortest chain)."""
    definitions = item._fixtureinfo.name2fixturedefs
    queue = [[name] for name in item._fixtureinfo.initialnames]
    seen: set[int] = set()
    while queue:
        chain = queue.pop(0)
        fixturedefs = definitions.get(chain[-1], ())
        # The last definition is the one used; one that requests its own name uses the one
        # before it as well (a conftest overriding a fixture in terms of the original).
        for fixturedef in reversed(fixturedefs):
            if id(fixturedef) in seen:
                break
            seen.add(id(fixturedef))
            yield chain, fixturedef
            queue += [[*chain, name] for name in fixturedef.argnames if name != chain[-1]]
            if chain[-1] not in fixturedef.argnames:
                break


def _definition(fixturedef: Any) -> tuple[Path, int] | None:
    function = inspect.unwrap(fixturedef.func)
    code = getattr(function, "__code__", None)
    if code is None:
        return None
    return Path(code.co_filename).resolve(), int(code.co_firstlineno)


def _double_in(value: object) -> tuple[str, Path] | None:
    """The qualified name and file of the class (or function) ``value`` is, or is made by."""
    defining = value if inspect.isclass(value) or inspect.isfunction(value) else type(value)
    module = sys.modules.get(getattr(defining, "__module__", "") or "")
    file = getattr(module, "__file__", None)
    if file is None:
        return None
    return f"{defining.__module__}.{defining.__qualname__}", Path(file).resolve()


def _module_file(module: object) -> tuple[str, Path] | None:
    file = getattr(module, "__file__", None)
    return None if file is None else (getattr(module, "__name__", "?"), Path(file).resolve())
