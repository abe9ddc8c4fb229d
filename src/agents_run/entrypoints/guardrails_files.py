"""The files ``agents-run guardrails init`` writes: package markers, the import contract (INI or
TOML), the pre-commit hook and the pytest plugin's settings, each as a block between marker
comments so that a second run replaces exactly what the first wrote. Nothing is written here."""

from __future__ import annotations

import configparser
import re
import tomllib
from collections.abc import Callable, Sequence
from pathlib import Path

from agents_run.entrypoints.guardrails_layout import (
    _RERUN,
    CONTRACT_ID,
    GUIDANCE,
    HOOK_ID,
    IMPORT_LINTER,
    Change,
    GuardrailsError,
    Layout,
)

# --- __init__.py files ------------------------------------------------------------------------


def package_markers(layout: Layout) -> list[Change]:
    """import-linter skips a folder without ``__init__.py`` inside a regular package; where the
    test folders are all namespace packages (no ``__init__.py`` at all) they work as they are."""
    folders: set[Path] = set()
    for path in (layout.unit_mocks, *layout.integration):
        parts = path.removesuffix(".py").split("/")
        start = layout.root / path
        for depth in range(1, len(parts) + (0 if start.is_file() else 1)):
            folders.add(layout.root.joinpath(*parts[:depth]))
        if start.is_dir():
            folders.update(
                folder
                for folder in start.rglob("*")
                if folder.is_dir() and folder.name.isidentifier() and any(folder.rglob("*.py"))
            )
    if not any((folder / "__init__.py").exists() for folder in folders):
        return []
    return [
        Change(folder / "__init__.py", None, "", "a package marker import-linter needs")
        for folder in sorted(folders)
        if not (folder / "__init__.py").exists()
    ]


# --- managed blocks ---------------------------------------------------------------------------


def _markers(name: str, indent: str = "") -> tuple[str, str]:
    return (
        f"{indent}# >>> agents-run guardrails: {name} ({_RERUN})",
        f"{indent}# <<< agents-run guardrails: {name}",
    )


def _with_block(
    text: str, name: str, body: list[str], where: Callable[[list[str]], int], indent: str = ""
) -> str:
    """``text`` with the named block replaced by ``body``, or inserted at line ``where(lines)``."""
    begin, end = _markers(name, indent)
    lines = text.splitlines()
    block = [begin, *body, end]
    starts = [i for i, line in enumerate(lines) if line.strip() == begin.strip()]
    if starts:
        ends = [i for i, line in enumerate(lines) if line.strip() == end.strip() and i > starts[0]]
        if not ends:
            raise GuardrailsError(f"the block {name!r} has a start marker but no end marker")
        lines[starts[0] : ends[0] + 1] = block
    else:
        at = where(lines)
        previous = lines[at - 1].strip() if at else ""
        if previous and not previous.endswith(":") and not previous.startswith("["):
            block = ["", *block]
        lines[at:at] = block
    return "\n".join(lines) + "\n"


def _at_end(lines: list[str]) -> int:
    return len(lines)


def _read(path: Path, pending: dict[Path, str] | None = None) -> str | None:
    """The file's text (None: missing), or what an earlier step of the plan will write there."""
    if pending and path in pending:
        return pending[path]
    return path.read_text(encoding="utf-8") if path.is_file() else None


def _indented_list(items: Sequence[str]) -> list[str]:
    return [f"    {item}" for item in items]


def _toml_list(items: Sequence[str]) -> str:
    return "[" + ", ".join(f'"{item}"' for item in items) + "]"


def _load_toml(path: Path, text: str) -> dict[str, object]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise GuardrailsError(f"{path.name} is not valid TOML ({error})") from None


def _table(data: dict[str, object], dotted: str) -> dict[str, object] | None:
    for key in dotted.split("."):
        value = data.get(key)
        if not isinstance(value, dict):
            return None
        data = value
    return data


# --- the import contract ----------------------------------------------------------------------


def import_contract(layout: Layout) -> Change:
    pyproject = layout.root / "pyproject.toml"
    pyproject_text = _read(pyproject)
    for name in (".importlinter", "setup.cfg"):
        path = layout.root / name
        text = _read(path)
        if text is not None and (name == ".importlinter" or "[importlinter]" in text):
            return Change(path, text, _ini_contract(layout, path, text), "the import contract")
    if pyproject_text is not None:
        data = _load_toml(pyproject, pyproject_text)
        if _table(data, "tool.importlinter") is not None:
            after = _toml_contract(layout, pyproject, pyproject_text, data)
            return Change(pyproject, pyproject_text, after, "the import contract")
    path = layout.root / ".importlinter"
    return Change(path, None, _ini_contract(layout, path, ""), "the import contract")


def _ini_contract(layout: Layout, path: Path, text: str) -> str:
    parser = configparser.ConfigParser()
    try:
        parser.read_string(text)
    except configparser.Error as error:
        raise GuardrailsError(f"{path.name} does not parse as an INI file ({error})") from None
    if not parser.has_section("importlinter"):
        text = (
            "[importlinter]\nroot_packages =\n"
            + "\n".join(_indented_list(layout.root_packages))
            + ("\n\n" + text if text.strip() else "\n")
        )
    else:
        section = parser["importlinter"]
        known = (section.get("root_packages", "") + " " + section.get("root_package", "")).split()
        missing = [name for name in layout.root_packages if name not in known]
        if missing:
            text = _add_ini_root_packages(path, text, missing)
    body = [
        f"[importlinter:contract:{CONTRACT_ID}]",
        "name = Integration and end-to-end tests never import unit test doubles",
        "type = forbidden",
        "source_modules =",
        *_indented_list([layout.module(path) for path in layout.integration]),
        "forbidden_modules =",
        *_indented_list([layout.module(layout.unit_mocks)]),
        f"broken_contract_guidance = {GUIDANCE}",
    ]
    return _with_block(text, "import contract", body, _at_end)


def _add_ini_root_packages(path: Path, text: str, missing: list[str]) -> str:
    lines = text.splitlines()
    section = next(i for i, line in enumerate(lines) if line.strip() == "[importlinter]")
    for i in range(section + 1, len(lines)):
        if lines[i].startswith("["):
            break
        match = re.match(r"(root_packages?)\s*[=:]\s*(.*)$", lines[i])
        if match:
            end = i + 1
            while end < len(lines) and lines[end][:1] in (" ", "\t") and lines[end].strip():
                end += 1
            names = [match[2].strip(), *(line.strip() for line in lines[i + 1 : end])]
            names = [name for name in names if name and not name.startswith("#")]
            lines[i:end] = ["root_packages =", *_indented_list([*names, *missing])]
            return "\n".join(lines) + "\n"
    raise GuardrailsError(
        f"{path.name}: [importlinter] names no root_packages; add {', '.join(missing)} to it"
    )


def _toml_contract(layout: Layout, path: Path, text: str, data: dict[str, object]) -> str:
    table = _table(data, "tool.importlinter") or {}
    if "contracts" in table and not _has_block(text, "import contract"):
        contracts = table["contracts"]
        if not (isinstance(contracts, list) and _uses_array_tables(text)):
            raise GuardrailsError(
                f"{path.name}: [tool.importlinter] holds its contracts as an inline array; write "
                "them as [[tool.importlinter.contracts]] tables so one can be added"
            )
    known = [*_as_names(table.get("root_packages")), *_as_names(table.get("root_package"))]
    missing = [name for name in layout.root_packages if name not in known]
    if missing:
        text = _add_toml_root_packages(path, text, known, missing)
    body = [
        "[[tool.importlinter.contracts]]",
        f'id = "{CONTRACT_ID}"',
        'name = "Integration and end-to-end tests never import unit test doubles"',
        'type = "forbidden"',
        f"source_modules = {_toml_list([layout.module(path) for path in layout.integration])}",
        f"forbidden_modules = {_toml_list([layout.module(layout.unit_mocks)])}",
        f'broken_contract_guidance = "{GUIDANCE}"',
    ]
    after = _with_block(text, "import contract", body, _at_end)
    _load_toml(path, after)  # what we wrote must still parse
    return after


def _has_block(text: str, name: str) -> bool:
    return _markers(name)[0].strip() in text


def _uses_array_tables(text: str) -> bool:
    return re.search(r"^\s*\[\[tool\.importlinter\.contracts\]\]", text, re.MULTILINE) is not None


def _as_names(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [str(item) for item in value] if isinstance(value, list) else []


def _add_toml_root_packages(path: Path, text: str, known: list[str], missing: list[str]) -> str:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "[tool.importlinter]")
    for i in range(start + 1, len(lines)):
        if lines[i].lstrip().startswith("["):
            break
        if re.match(r"\s*root_packages?\s*=", lines[i]):
            end = i
            if "[" in lines[i] and "]" not in lines[i]:  # a list over several lines
                while end + 1 < len(lines) and "]" not in lines[end]:
                    end += 1
            lines[i : end + 1] = [f"root_packages = {_toml_list([*known, *missing])}"]
            return "\n".join(lines) + "\n"
    raise GuardrailsError(
        f"{path.name}: [tool.importlinter] names no root_packages; add {', '.join(missing)} to it"
    )


# --- the pre-commit hook ----------------------------------------------------------------------


def pre_commit_hook(layout: Layout) -> Change:
    path = layout.root / ".pre-commit-config.yaml"
    text = _read(path)
    # The hook's own environment has import-linter only; it reads the sources, so the project's
    # root packages just have to be findable: the root (lint-imports adds it) and src/.
    entry = "lint-imports"
    if (layout.root / "src").is_dir():
        entry = (
            "'python -c \"import sys, importlinter.cli as cli; sys.path.insert(0, "
            "sys.argv.pop(1)); cli.lint_imports_command()\" src'"
        )
    hook = [
        "- repo: local",
        "  hooks:",
        f"    - id: {HOOK_ID}",
        "      name: integration tests never import unit test doubles (import-linter)",
        f"      entry: {entry}",
        "      language: python",
        f'      additional_dependencies: ["{IMPORT_LINTER}"]',
        "      files: '(\\.pyi?|^\\.importlinter|^pyproject\\.toml|^setup\\.cfg)$'",
        "      pass_filenames: false",
    ]
    if text is None:
        after = _with_block("repos:", "pre-commit hook", _indented(hook, "  "), _at_end, "  ")
        return Change(path, None, after, "the pre-commit hook")
    lines = text.splitlines()
    repos = [i for i, line in enumerate(lines) if re.match(r"repos\s*:", line)]
    if not repos:
        after = _with_block(
            text.rstrip("\n") + "\nrepos:", "pre-commit hook", _indented(hook, "  "), _at_end, "  "
        )
        return Change(path, text, after, "the pre-commit hook")
    if lines[repos[0]].split(":", 1)[1].split("#")[0].strip():
        raise GuardrailsError(
            f"{path.name}: `repos:` is written in flow style; write it as a block list "
            "(one `- repo:` per line) so that a hook can be added"
        )
    following = [
        i for i in range(repos[0] + 1, len(lines)) if lines[i].strip() and lines[i][0] not in " -#"
    ]
    end = following[0] if following else len(lines)
    items = [line for line in lines[repos[0] + 1 : end] if line.lstrip().startswith("- ")]
    indent = items[0][: len(items[0]) - len(items[0].lstrip())] if items else "  "

    def before_next_key(lines: list[str]) -> int:
        at = end
        while at > repos[0] + 1 and not lines[at - 1].strip():
            at -= 1
        return at

    after = _with_block(text, "pre-commit hook", _indented(hook, indent), before_next_key, indent)
    return Change(path, text, after, "the pre-commit hook")


def _indented(lines: list[str], indent: str) -> list[str]:
    return [indent + line for line in lines]


# --- the plugin's settings --------------------------------------------------------------------

_PYTEST_FILES = (
    ("pytest.ini", "[pytest]"),
    (".pytest.ini", "[pytest]"),
    ("pyproject.toml", "[tool.pytest.ini_options]"),
    ("tox.ini", "[pytest]"),
    ("setup.cfg", "[tool:pytest]"),
)


def pytest_settings(layout: Layout, *, require_infra: bool, pending: dict[Path, str]) -> Change:
    """The plugin's ini settings, in the file pytest reads them from (as pytest picks it)."""
    for name, header in _PYTEST_FILES:
        path = layout.root / name
        text = _read(path, pending)
        if text is not None and (name in ("pytest.ini", ".pytest.ini") or header in text):
            return _settings_in(layout, path, text, header, require_infra=require_infra)
    pyproject = layout.root / "pyproject.toml"
    text = _read(pyproject, pending)
    if text is not None:
        return _settings_in(
            layout, pyproject, text, "[tool.pytest.ini_options]", require_infra=require_infra
        )
    path = layout.root / "pytest.ini"
    return _settings_in(layout, path, None, "[pytest]", require_infra=require_infra)


def _settings_in(
    layout: Layout, path: Path, text: str | None, header: str, *, require_infra: bool
) -> Change:
    toml = path.suffix == ".toml"
    infra = "true" if require_infra else "false"
    if toml:
        body = [
            f"agents_run_unit_mocks = {_toml_list([layout.unit_mocks])}",
            f"agents_run_integration_tests = {_toml_list(layout.integration)}",
            f"agents_run_require_infra = {infra}",
        ]
    else:
        body = [
            f"agents_run_unit_mocks = {layout.unit_mocks}",
            "agents_run_integration_tests =",
            *_indented_list(layout.integration),
            f"agents_run_require_infra = {infra}",
        ]
    current = text or ""
    if header not in current.splitlines() and not _has_block(current, "pytest settings"):
        current = (current.rstrip("\n") + "\n\n" if current.strip() else "") + header

    def after_header(lines: list[str]) -> int:
        return lines.index(header) + 1

    after = _with_block(current, "pytest settings", body, after_header)
    if toml:
        _load_toml(path, after)
    return Change(path, text, after, "the plugin's run-time settings")
