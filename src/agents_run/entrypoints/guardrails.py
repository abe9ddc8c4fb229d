"""``agents-run guardrails init``: keep integration tests away from unit-test doubles, set up in
the user's project from the folders it has.

Plain file logic (no pytest, no import-linter at run time): it writes an import-linter contract,
a pre-commit hook that runs it, and the pytest plugin's settings for the run-time check of
fixtures. Each piece is a block between marker comments, so a second run replaces exactly what
the first wrote and everything else in those files stays as the user wrote it.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from agents_run.entrypoints.guardrails_files import (
    import_contract,
    package_markers,
    pre_commit_hook,
    pytest_settings,
)
from agents_run.entrypoints.guardrails_layout import (
    DEFAULT_INTEGRATION,
    DEFAULT_UNIT_MOCKS,
    Change,
    GuardrailsError,
    Layout,
    find_layout,
)

__all__ = [
    "Change",
    "GuardrailsError",
    "Layout",
    "add_command",
    "apply",
    "find_layout",
    "plan",
    "run",
]


def add_command(commands: Any) -> None:
    """The ``guardrails`` subcommand of ``agents-run`` (``commands``: its subparsers)."""
    guardrails = commands.add_parser(
        "guardrails", help="set up the guardrails that keep integration tests off unit mocks"
    )
    actions = guardrails.add_subparsers(
        dest="guardrails_command", required=True, metavar="GUARDRAILS_COMMAND"
    )
    init = actions.add_parser(
        "init",
        help="write the import contract, the pre-commit hook and the pytest plugin's settings",
        description="Write, into the project at --root, an import-linter contract that forbids "
        "integration and end-to-end tests to import the unit tests' doubles, a pre-commit hook "
        "that checks it, and the pytest plugin's settings that also fail such a test when it "
        "gets a double through a fixture. A second run changes nothing.",
    )
    init.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 with what is missing or stale"
    )
    init.add_argument("--root", type=Path, default=Path("."), help="the project (default: .)")
    init.add_argument(
        "--unit-mocks",
        metavar="PATH",
        help=f"the unit tests' doubles, a folder or a .py module (default: {DEFAULT_UNIT_MOCKS})",
    )
    init.add_argument(
        "--integration",
        metavar="PATH",
        action="append",
        default=[],
        help="a folder of integration or end-to-end tests (repeatable; default: those of "
        f"{', '.join(DEFAULT_INTEGRATION)} that exist)",
    )
    init.add_argument(
        "--no-require-infra",
        dest="require_infra",
        action="store_false",
        help="leave agents_run_require_infra off (tests may then use get_infra() without the "
        "infra fixture)",
    )


def run(args: argparse.Namespace, out: Callable[[str], None] = print) -> int:
    """``agents-run guardrails init [--check]``: 0 where done (or up to date), 1 where --check
    found something missing or stale."""
    layout = find_layout(args.root, args.unit_mocks, args.integration)
    changes = plan(layout, require_infra=args.require_infra)
    shown = {change.path: change.path.relative_to(layout.root).as_posix() for change in changes}
    if args.check:
        needed = [change for change in changes if change.needed]
        for change in needed:
            state = "missing" if change.before is None else "stale"
            out(f"{state}: {shown[change.path]} ({change.what}); run `agents-run guardrails init`")
        if not needed:
            out("guardrails up to date")
        return 1 if needed else 0
    apply(changes)
    for change in changes:
        out(f"{'wrote' if change.needed else 'unchanged'}: {shown[change.path]} ({change.what})")
    out(
        f"guardrails: {', '.join(layout.integration)} may not import {layout.unit_mocks} nor "
        "get its fixtures; check with `lint-imports` and pytest, and run `pre-commit install` "
        "once per clone"
    )
    return 0


def plan(layout: Layout, *, require_infra: bool = True) -> list[Change]:
    """Every file ``init`` writes, before and after; nothing is written here."""
    contract = import_contract(layout)
    settings = pytest_settings(
        layout, require_infra=require_infra, pending={contract.path: contract.after}
    )
    if settings.path == contract.path:  # pyproject.toml holds both: one change, made in turn
        both = f"{contract.what} and {settings.what}"
        return [
            *package_markers(layout),
            Change(contract.path, contract.before, settings.after, both),
            pre_commit_hook(layout),
        ]
    return [*package_markers(layout), contract, pre_commit_hook(layout), settings]


def apply(changes: Sequence[Change]) -> None:
    for change in changes:
        if change.needed:
            change.path.parent.mkdir(parents=True, exist_ok=True)
            change.path.write_text(change.after, encoding="utf-8")
