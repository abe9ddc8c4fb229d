"""Every contract in .importlinter bites: one violating import in a copy of the project breaks it.

Each test copies what ``lint-imports`` reads (src/, tests/, .importlinter) to a temporary folder,
changes the copy, and runs the virtual environment's ``lint-imports`` on it.
"""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONFIG = PROJECT_ROOT / ".importlinter"
CONTRACT_PREFIX = "importlinter:contract:"
RUN_TIMEOUT_SECONDS = 60


def read_contracts() -> dict[str, configparser.SectionProxy]:
    parser = configparser.ConfigParser()
    parser.read(CONFIG, encoding="utf-8")
    return {
        section.removeprefix(CONTRACT_PREFIX): parser[section]
        for section in parser.sections()
        if section.startswith(CONTRACT_PREFIX)
    }


CONTRACTS = read_contracts()


def config_list(section: configparser.SectionProxy, option: str) -> set[str]:
    return {line.strip() for line in section[option].splitlines() if line.strip()}


def is_regular_package(name: str) -> bool:
    return any(
        (folder / name / "__init__.py").is_file() for folder in (PROJECT_ROOT / "src", PROJECT_ROOT)
    )


def copy_project(destination: Path) -> Path:
    for folder in ("src", "tests"):
        shutil.copytree(
            PROJECT_ROOT / folder,
            destination / folder,
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
        )
    shutil.copy2(CONFIG, destination / ".importlinter")
    return destination


def isolated_env(project: Path) -> dict[str, str]:
    """The copy's src/ and the venv's site-packages, and nothing else, on the module path."""
    site_packages = dict.fromkeys([sysconfig.get_path("purelib"), sysconfig.get_path("platlib")])
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(project / "src"), *site_packages]),
        # Contract names must stay on one line of the report.
        "COLUMNS": "250",
    }


def run_in_copy(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # -S skips site-packages' .pth files: the editable install's one would put the real src/ on
    # the path too, and the real tree, not the copy, would be analysed.
    return subprocess.run(
        [sys.executable, "-S", *args],
        cwd=project,
        env=isolated_env(project),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_SECONDS,
        check=False,
    )


def lint_imports(project: Path) -> subprocess.CompletedProcess[str]:
    # No cache: runs under xdist would share one and it is not safe in parallel.
    script = Path(sysconfig.get_path("scripts")) / "lint-imports"
    return run_in_copy(project, str(script), "--no-cache")


def broken_contracts(report: str) -> set[str]:
    return {key for key, contract in CONTRACTS.items() if f"{contract['name']} BROKEN" in report}


@dataclass(frozen=True)
class Violation:
    """``line`` appended to the module at ``path``, after writing ``new_modules`` (if any)."""

    id: str
    path: str
    line: str
    breaks: frozenset[str]
    evidence: str
    new_modules: dict[str, str] = field(default_factory=dict)

    def apply(self, project: Path) -> None:
        for new_path, text in self.new_modules.items():
            assert not (project / new_path).exists(), f"{new_path} exists: pick a new name"
            (project / new_path).write_text(text, encoding="utf-8")
        target = project / self.path
        assert target.is_file(), f"{self.path} is gone: point this case at a module that exists"
        with target.open("a", encoding="utf-8") as module:
            module.write(f"\n{self.line}\n")


PLUGIN_MODULE = {"src/pytest_agents_run/architecture_probe.py": '"""Any plugin module."""\n'}

VIOLATIONS = [
    Violation(
        id="a lower layer imports a higher one",
        path="src/agents_run/config/wiring.py",
        line="import agents_run.entrypoints.demo",
        # The entry points import config: going back up closes a cycle too.
        breaks=frozenset({"layers", "no-cycles"}),
        evidence="agents_run.config.wiring -> agents_run.entrypoints.demo",
    ),
    Violation(
        id="a new top-level module sits in no layer",
        new_modules={"src/agents_run/unplaced_module.py": '"""A module placed in no layer."""\n'},
        path="src/agents_run/unplaced_module.py",
        line="from agents_run.application.infra import get_infra",
        breaks=frozenset({"layers"}),
        evidence="agents_run.unplaced_module",
    ),
    Violation(
        id="a use case other than the seam imports the in-memory adapters",
        path="src/agents_run/application/start_run.py",
        line="import agents_run.adapters.memory",
        breaks=frozenset({"layers", "application-through-the-seam", "adapters-wired-by-config"}),
        evidence="agents_run.application.start_run -> agents_run.adapters.memory",
    ),
    Violation(
        id="the domain does I/O",
        path="src/agents_run/domain/events.py",
        line="import asyncio",
        breaks=frozenset({"domain-is-pure"}),
        evidence="agents_run.domain.events -> asyncio",
    ),
    Violation(
        id="a use case imports a driver",
        path="src/agents_run/application/stream_run.py",
        line="import redis",
        breaks=frozenset({"application-through-the-seam"}),
        evidence="agents_run.application.stream_run -> redis",
    ),
    Violation(
        id="an entry point imports an adapter",
        path="src/agents_run/entrypoints/cli.py",
        line="import agents_run.adapters.sqlite_store",
        breaks=frozenset({"adapters-wired-by-config"}),
        evidence="agents_run.entrypoints.cli -> agents_run.adapters.sqlite_store",
    ),
    Violation(
        id="an entry point imports an adapter added later",
        new_modules={"src/agents_run/adapters/kafka_bus.py": '"""A Kafka event bus."""\n'},
        path="src/agents_run/entrypoints/cli.py",
        line="import agents_run.adapters.kafka_bus",
        breaks=frozenset({"adapters-wired-by-config"}),
        evidence="agents_run.entrypoints.cli -> agents_run.adapters.kafka_bus",
    ),
    Violation(
        id="the library imports pytest",
        path="src/agents_run/domain/json_data.py",
        line="import pytest",
        breaks=frozenset({"library-without-pytest"}),
        evidence="agents_run.domain.json_data -> pytest",
    ),
    Violation(
        id="the library imports the plugin",
        new_modules=PLUGIN_MODULE,
        path="src/agents_run/entrypoints/formatting.py",
        line="import pytest_agents_run.architecture_probe",
        breaks=frozenset({"library-without-pytest"}),
        evidence="agents_run.entrypoints.formatting -> pytest_agents_run.architecture_probe",
    ),
    Violation(
        id="two sibling modules import each other",
        path="src/agents_run/application/agents.py",
        line="import agents_run.application.run_worker",
        breaks=frozenset({"no-cycles"}),
        evidence="No cycles are allowed in agents_run.application.",
    ),
    Violation(
        id="an integration test imports a unit test double",
        path="tests/integration/test_start_run.py",
        line="import tests.unit.mocks",
        breaks=frozenset({"integration-tests-without-unit-mocks"}),
        evidence="tests.integration.test_start_run -> tests.unit.mocks",
    ),
    Violation(
        id="an end-to-end test reaches a unit test double through a unit helper",
        new_modules={"tests/unit/probe_helpers.py": "import tests.unit.mocks\n"},
        path="tests/e2e/test_run_end_to_end.py",
        line="import tests.unit.probe_helpers",
        breaks=frozenset({"integration-tests-without-unit-mocks"}),
        evidence="tests.unit.probe_helpers -> tests.unit.mocks",
    ),
]


def test_lint_imports_reads_the_copy_and_not_the_installed_project(tmp_path: Path) -> None:
    project = copy_project(tmp_path)
    where = run_in_copy(
        project,
        "-c",
        "import agents_run, pytest_agents_run, tests\n"
        "for package in (agents_run, pytest_agents_run, tests):\n"
        "    print(*package.__path__, sep='\\n')",
    )
    assert where.returncode == 0, where.stderr
    folders = [Path(line) for line in where.stdout.splitlines()]
    assert len(folders) == 3, folders
    assert all(folder.is_relative_to(project) for folder in folders), folders


def test_the_untouched_copy_keeps_every_contract(tmp_path: Path) -> None:
    result = lint_imports(copy_project(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    for contract in CONTRACTS.values():
        assert f"{contract['name']} KEPT" in result.stdout


@pytest.mark.parametrize("violation", VIOLATIONS, ids=[v.id for v in VIOLATIONS])
def test_one_violating_import_breaks_its_contract(tmp_path: Path, violation: Violation) -> None:
    project = copy_project(tmp_path)
    violation.apply(project)
    result = lint_imports(project)
    assert result.returncode == 1, result.stdout + result.stderr
    assert broken_contracts(result.stdout) == violation.breaks, result.stdout
    assert violation.evidence in result.stdout


def test_every_contract_has_a_violation_that_breaks_it() -> None:
    proven = set().union(*(violation.breaks for violation in VIOLATIONS))
    assert proven == set(CONTRACTS)


@pytest.mark.parametrize("key", sorted(CONTRACTS))
def test_every_contract_tells_how_to_fix_it(key: str) -> None:
    assert CONTRACTS[key].get("broken_contract_guidance", "").strip()


def test_every_regular_root_package_is_checked_for_cycles() -> None:
    parser = configparser.ConfigParser()
    parser.read(CONFIG, encoding="utf-8")
    roots = config_list(parser["importlinter"], "root_packages")
    missing = {name for name in roots if is_regular_package(name)} - config_list(
        CONTRACTS["no-cycles"], "ancestors"
    )
    assert not missing, f"add {sorted(missing)} to the ancestors of no-cycles in .importlinter"


def test_the_library_is_forbidden_the_whole_plugin_package_once_it_exists() -> None:
    # A forbidden module of our own must exist: until the plugin package has an __init__.py,
    # only its modules can be named.
    plugin = (
        "pytest_agents_run" if is_regular_package("pytest_agents_run") else "pytest_agents_run.**"
    )
    forbidden = config_list(CONTRACTS["library-without-pytest"], "forbidden_modules")
    assert plugin in forbidden, (
        f"name {plugin} (not {sorted(forbidden - {'pytest', '_pytest'})}) in the "
        "forbidden_modules of library-without-pytest in .importlinter"
    )
