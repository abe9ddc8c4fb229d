"""The layout ``agents-run guardrails init`` works with: the folders of unit-test doubles and of
integration tests, the planned file changes, the errors and the constants the files are written
with."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from agents_run.errors import AgentsRunError

CONTRACT_ID = "agents-run-integration-without-unit-mocks"
HOOK_ID = "agents-run-import-contracts"
IMPORT_LINTER = "import-linter>=2.17,<3"
DEFAULT_UNIT_MOCKS = "tests/unit/mocks"
DEFAULT_INTEGRATION = ("tests/integration", "tests/e2e")
_RERUN = "written by `agents-run guardrails init`; rerun it instead of editing"
GUIDANCE = (
    "Integration and end-to-end tests exercise the real adapters through the infra fixture; a "
    "double from the unit tests' mocks would make them prove nothing about the real thing. Use "
    "the real adapter, or move the test to the unit tests."
)


class GuardrailsError(AgentsRunError, ValueError):
    """The project's layout or files are not what ``guardrails init`` can work with."""


@dataclass(frozen=True)
class Layout:
    """The folders the guardrails are about, as paths relative to the project root (posix)."""

    root: Path
    unit_mocks: str
    integration: tuple[str, ...]

    @staticmethod
    def module(path: str) -> str:
        return path.removesuffix(".py").replace("/", ".")

    @property
    def root_packages(self) -> list[str]:
        return sorted({path.split("/")[0] for path in (self.unit_mocks, *self.integration)})


@dataclass(frozen=True)
class Change:
    """One file as it is (None: missing) and as ``init`` writes it."""

    path: Path
    before: str | None
    after: str
    what: str

    @property
    def needed(self) -> bool:
        return self.before != self.after


def find_layout(
    root: Path, unit_mocks: str | None = None, integration: Sequence[str] = ()
) -> Layout:
    """The layout under ``root``: the folders named, or the conventional ones that exist."""
    if not root.is_dir():
        raise GuardrailsError(f"project root {str(root)!r} is not a folder")
    mocks = _relative(root, unit_mocks or DEFAULT_UNIT_MOCKS, "--unit-mocks")
    mocks_path = root / mocks
    if not (mocks_path.is_dir() or (mocks_path.suffix == ".py" and mocks_path.is_file())):
        raise GuardrailsError(
            f"no unit-test doubles at {mocks} (a package folder or a .py module); name them with "
            "--unit-mocks PATH"
        )
    if integration:
        folders = [_relative(root, path, "--integration") for path in integration]
        for folder in folders:
            if not (root / folder).is_dir():
                raise GuardrailsError(f"--integration {folder}: no such folder under {root}")
    else:
        folders = [folder for folder in DEFAULT_INTEGRATION if (root / folder).is_dir()]
        if not folders:
            raise GuardrailsError(
                f"found neither {' nor '.join(DEFAULT_INTEGRATION)} under {root}; name the "
                "folders of integration and end-to-end tests with --integration PATH (repeatable)"
            )
    for folder in folders:
        if _inside(mocks, folder) or _inside(folder, mocks):
            raise GuardrailsError(
                f"{folder} and {mocks} overlap: the unit-test doubles must live outside the "
                "integration tests (and the other way round)"
            )
    return Layout(root, mocks, tuple(sorted(set(folders))))


def _relative(root: Path, given: str, option: str) -> str:
    path = Path(given)
    absolute = (path if path.is_absolute() else root / path).resolve()
    try:
        relative = absolute.relative_to(root.resolve()).as_posix()
    except ValueError:
        raise GuardrailsError(f"{option} {given}: not inside the project root {root}") from None
    parts = relative.removesuffix(".py").split("/")
    if relative == "." or not all(part.isidentifier() for part in parts):
        raise GuardrailsError(
            f"{option} {given}: import-linter names modules by their dotted path, and "
            f"{relative!r} is not one (every folder name must be a Python identifier)"
        )
    return relative


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder + "/")
