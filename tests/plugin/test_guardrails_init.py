"""``agents-run guardrails init`` in a user's project: unit tests with doubles in
tests/unit/mocks, integration tests in tests/integration."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from agents_run.entrypoints.cli import main

SCRIPTS = Path(sysconfig.get_path("scripts"))
FAKE_LLM = """
import pytest

class FakeLLM:
    def complete(self, prompt):
        return "ok"

@pytest.fixture
def fake_llm():
    return FakeLLM()
"""


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A user's project: a unit-mocks module, a unit test and an integration test; no tests/e2e."""
    write(
        tmp_path,
        {
            "tests/unit/mocks/llm.py": FAKE_LLM,
            "tests/unit/test_prompt.py": "from tests.unit.mocks.llm import FakeLLM\n",
            "tests/integration/test_runs.py": "def test_runs():\n    pass\n",
        },
    )
    return tmp_path


def init(root: Path, *args: str) -> tuple[int, str]:
    """``agents-run guardrails init --root ROOT ARGS``: its exit code and what it printed."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = main(["guardrails", "init", "--root", str(root), *args])
    return code, out.getvalue().strip()


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    # No cache: tests run in parallel, and import-linter's cache is not safe to share.
    return subprocess.run(
        [str(SCRIPTS / "lint-imports"), "--no-cache"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def files_of(root: Path) -> dict[str, str]:
    return {
        path.relative_to(root).as_posix(): path.read_text(encoding="utf-8")
        for path in sorted(root.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }


def test_init_writes_the_contract_the_hook_and_the_plugin_settings(project: Path) -> None:
    code, out = init(project)
    assert code == 0, out
    assert out.splitlines()[:3] == [
        "wrote: .importlinter (the import contract)",
        "wrote: .pre-commit-config.yaml (the pre-commit hook)",
        "wrote: pytest.ini (the plugin's run-time settings)",
    ]
    contract = (project / ".importlinter").read_text()
    assert "root_packages =\n    tests\n" in contract
    # No tests/e2e in this project: the contract names only what exists.
    assert (
        "source_modules =\n    tests.integration\nforbidden_modules =\n    tests.unit.mocks\n"
        in (contract)
    )
    hook = (project / ".pre-commit-config.yaml").read_text()
    assert "language: python" in hook
    assert 'additional_dependencies: ["import-linter>=2.17,<3"]' in hook
    assert "entry: lint-imports\n" in hook  # no src/: the root is all import-linter needs
    settings = (project / "pytest.ini").read_text()
    assert "agents_run_unit_mocks = tests/unit/mocks\n" in settings
    assert "agents_run_integration_tests =\n    tests/integration\n" in settings
    assert "agents_run_require_infra = true\n" in settings
    # All namespace packages: no __init__.py is needed, and none is written.
    assert not list(project.rglob("__init__.py"))


def test_a_second_init_changes_nothing(project: Path) -> None:
    init(project)
    before = files_of(project)
    code, out = init(project)
    assert code == 0
    assert [line.split(":")[0] for line in out.splitlines()[:3]] == ["unchanged"] * 3
    assert files_of(project) == before


def test_after_init_an_integration_test_importing_a_unit_mock_fails_lint_imports_and_pytest(
    project: Path,
) -> None:
    init(project)
    assert lint_imports(project).returncode == 0
    assert run_pytest(project).returncode == 0
    write(
        project,
        {
            "tests/integration/test_llm.py": (
                "from tests.unit.mocks.llm import FakeLLM\n\n"
                "def test_llm():\n    assert FakeLLM().complete('hi') == 'ok'\n"
            )
        },
    )
    result = lint_imports(project)
    assert result.returncode == 1
    assert "Integration and end-to-end tests never import unit test doubles BROKEN" in (
        result.stdout
    )
    assert "tests.integration.test_llm -> tests.unit.mocks.llm" in result.stdout
    tests = run_pytest(project)
    assert tests.returncode == 1
    assert "test_llm.py::test_llm: its module imports FakeLLM" in tests.stdout


def run_pytest(root: Path) -> subprocess.CompletedProcess[str]:
    """pytest in the project, with the settings init wrote (``-m``: the root on the path)."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:randomly", "-p", "no:cacheprovider"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_check_reports_what_is_missing_then_nothing_then_drift(project: Path) -> None:
    code, out = init(project, "--check")
    assert code == 1
    assert out.splitlines() == [
        "missing: .importlinter (the import contract); run `agents-run guardrails init`",
        "missing: .pre-commit-config.yaml (the pre-commit hook); run `agents-run guardrails init`",
        "missing: pytest.ini (the plugin's run-time settings); run `agents-run guardrails init`",
    ]
    assert not (project / ".importlinter").exists()  # --check writes nothing
    init(project)
    assert init(project, "--check") == (0, "guardrails up to date")
    # The team adds end-to-end tests: the contract and the settings no longer cover them.
    write(project, {"tests/e2e/test_cli.py": "def test_cli():\n    pass\n"})
    code, out = init(project, "--check")
    assert code == 1
    assert out.splitlines() == [
        "stale: .importlinter (the import contract); run `agents-run guardrails init`",
        "stale: pytest.ini (the plugin's run-time settings); run `agents-run guardrails init`",
    ]
    init(project)
    assert "    tests.e2e\n" in (project / ".importlinter").read_text()


def test_the_projects_own_files_are_kept_and_extended(project: Path) -> None:
    own_contract = (
        "# the team's own settings\n"
        "[importlinter]\n"
        "root_package = shop\n"
        "\n"
        "[importlinter:contract:shop-layers]\n"
        "name = shop layers\n"
        "type = layers\n"
        "containers = shop\n"
        "layers =\n"
        "    api\n"
        "    core\n"
    )
    own_hooks = (
        "repos:\n"
        "- repo: https://github.com/astral-sh/ruff-pre-commit\n"
        "  rev: v0.6.0\n"
        "  hooks:\n"
        "  - id: ruff\n"
        "\n"
        "ci:\n"
        "  autofix_prs: false\n"
    )
    pyproject = '[project]\nname = "shop"\n\n[tool.pytest.ini_options]\naddopts = "-ra"\n'
    write(
        project,
        {
            ".importlinter": own_contract,
            ".pre-commit-config.yaml": own_hooks,
            "pyproject.toml": pyproject,
            "shop/__init__.py": "",
            "shop/api.py": "import shop.core\n",
            "shop/core.py": "",
        },
    )
    assert init(project)[0] == 0
    contract = (project / ".importlinter").read_text()
    assert contract.startswith("# the team's own settings\n[importlinter]\n")
    assert "root_packages =\n    shop\n    tests\n" in contract
    assert "[importlinter:contract:shop-layers]\nname = shop layers\n" in contract
    hooks = (project / ".pre-commit-config.yaml").read_text()
    assert hooks.startswith(own_hooks.split("\nci:", maxsplit=1)[0])
    # The hook goes into the repos list, at its indentation, before the next key.
    assert "\n- repo: local\n  hooks:\n    - id: agents-run-import-contracts\n" in hooks
    assert hooks.index("agents-run-import-contracts") < hooks.index("\nci:\n")
    settings = (project / "pyproject.toml").read_text()
    assert settings.startswith(pyproject.rstrip("\n").rsplit("\n", 1)[0])
    assert 'agents_run_integration_tests = ["tests/integration"]' in settings
    assert not (project / "pytest.ini").exists()
    result = lint_imports(project)
    assert result.returncode == 0, result.stdout
    assert "shop layers KEPT" in result.stdout
    precommit = subprocess.run(
        [sys.executable, "-m", "pre_commit", "validate-config", ".pre-commit-config.yaml"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert precommit.returncode == 0, precommit.stdout + precommit.stderr
    assert init(project, "--check") == (0, "guardrails up to date")


def test_a_pyproject_importlinter_config_gets_the_contract_as_a_table(project: Path) -> None:
    write(
        project,
        {
            "pyproject.toml": '[tool.importlinter]\nroot_packages = ["shop"]\n',
            "shop/__init__.py": "",
        },
    )
    assert init(project)[0] == 0
    text = (project / "pyproject.toml").read_text()
    assert 'root_packages = ["shop", "tests"]' in text
    assert '[[tool.importlinter.contracts]]\nid = "agents-run-integration-without-unit-mocks"' in (
        text
    )
    assert not (project / ".importlinter").exists()
    write(project, {"tests/integration/test_llm.py": "import tests.unit.mocks.llm\n"})
    assert lint_imports(project).returncode == 1


def test_regular_packages_get_the_init_files_import_linter_needs(project: Path) -> None:
    # tests/ is a regular package: import-linter would skip every folder below it that has no
    # __init__.py, and the contract would name modules that "do not exist".
    write(project, {"tests/__init__.py": "", "tests/integration/deep/test_deep.py": ""})
    code, out = init(project)
    assert code == 0
    assert "wrote: tests/unit/__init__.py (a package marker import-linter needs)" in out
    assert sorted(
        path.relative_to(project).as_posix() for path in project.rglob("__init__.py")
    ) == [
        "tests/__init__.py",
        "tests/integration/__init__.py",
        "tests/integration/deep/__init__.py",
        "tests/unit/__init__.py",
        "tests/unit/mocks/__init__.py",
    ]
    write(project, {"tests/integration/deep/test_llm.py": "import tests.unit.mocks.llm\n"})
    result = lint_imports(project)
    assert "tests.integration.deep.test_llm -> tests.unit.mocks.llm" in result.stdout


def test_the_folders_can_be_named(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "checks/fakes.py": "class FakeLLM: ...\n",
            "checks/system/test_a.py": "",
            "checks/api/test_b.py": "",
        },
    )
    args = ("--unit-mocks", "checks/fakes.py", "--integration", "checks/system")
    code, out = init(tmp_path, *args, "--integration", "checks/api", "--no-require-infra")
    assert code == 0, out
    contract = (tmp_path / ".importlinter").read_text()
    assert "    checks.api\n    checks.system\nforbidden_modules =\n    checks.fakes\n" in contract
    assert "agents_run_require_infra = false" in (tmp_path / "pytest.ini").read_text()
    write(tmp_path, {"checks/api/test_c.py": "from checks.fakes import FakeLLM\n"})
    assert lint_imports(tmp_path).returncode == 1


@pytest.mark.parametrize(
    ("files", "args", "message"),
    [
        (
            {"tests/integration/test_a.py": ""},
            (),
            "no unit-test doubles at tests/unit/mocks (a package folder or a .py module); name "
            "them with --unit-mocks PATH",
        ),
        (
            {"tests/unit/mocks/llm.py": ""},
            (),
            "found neither tests/integration nor tests/e2e under",
        ),
        (
            {"tests/unit-tests/mocks.py": "", "tests/integration/test_a.py": ""},
            ("--unit-mocks", "tests/unit-tests/mocks.py"),
            "'tests/unit-tests/mocks.py' is not one (every folder name must be a Python "
            "identifier)",
        ),
        (
            {"tests/unit/mocks/llm.py": "", "tests/integration/test_a.py": ""},
            ("--integration", "tests/unit"),
            "tests/unit and tests/unit/mocks overlap",
        ),
        (
            {"tests/unit/mocks/llm.py": "", "tests/integration/test_a.py": ""},
            ("--integration", "/"),
            "--integration /: not inside the project root",
        ),
        (
            {
                "tests/unit/mocks/llm.py": "",
                "tests/integration/test_a.py": "",
                ".pre-commit-config.yaml": "repos: []\n",
            },
            (),
            ".pre-commit-config.yaml: `repos:` is written in flow style",
        ),
        (
            {
                "tests/unit/mocks/llm.py": "",
                "tests/integration/test_a.py": "",
                ".importlinter": "[importlinter\n",
            },
            (),
            ".importlinter does not parse as an INI file",
        ),
    ],
    ids=["no mocks", "no integration", "not a module", "overlap", "outside", "flow", "bad ini"],
)
def test_a_layout_it_does_not_understand_is_a_named_error(
    tmp_path: Path, files: dict[str, str], args: tuple[str, ...], message: str
) -> None:
    write(tmp_path, files)
    before = files_of(tmp_path)
    code, out = init(tmp_path, *args)
    assert code == 2
    assert out.startswith("agents-run guardrails: GuardrailsError: ")
    assert message in out
    assert files_of(tmp_path) == before  # nothing written


@pytest.mark.skipif(shutil.which("git") is None, reason="pre-commit needs git")
def test_the_pre_commit_hook_fails_a_commit_that_imports_a_unit_mock(
    project: Path, pytestconfig: pytest.Config
) -> None:
    """The hook builds its own environment with import-linter, so it works whichever environment
    the team uses; a src/ layout is found too."""
    write(project, {"src/shop/__init__.py": ""})
    init(project)
    # pre-commit builds the hook's environment once (from the package index) and reuses it: keep
    # it in pytest's cache, so that later runs of this suite reuse it too.
    home = pytestconfig.cache.mkdir("pre-commit-home") if pytestconfig.cache else project / ".pc"
    env = {**os.environ, "PRE_COMMIT_HOME": str(home)}

    def run(*command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            list(command),
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )

    run("git", "init", "--quiet", ".")
    pre_commit = [sys.executable, "-m", "pre_commit", "run", "--all-files"]
    run("git", "add", "--all")
    passed = run(*pre_commit)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    write(project, {"tests/integration/test_llm.py": "from tests.unit.mocks import llm\n"})
    run("git", "add", "--all")
    failed = run(*pre_commit)
    assert failed.returncode == 1
    assert "tests.integration.test_llm -> tests.unit.mocks" in failed.stdout
