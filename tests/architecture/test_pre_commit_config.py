"""The pre-commit hooks are valid and run the tools installed in the project's .venv."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PRE_COMMIT_CONFIG = PROJECT_ROOT / ".pre-commit-config.yaml"


def test_pre_commit_accepts_the_config() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pre_commit", "validate-config", str(PRE_COMMIT_CONFIG)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_hook_runs_a_tool_from_the_venv() -> None:
    entries = re.findall(r"^\s+entry: (\S+)", PRE_COMMIT_CONFIG.read_text(encoding="utf-8"), re.M)
    assert sorted(Path(entry).name for entry in entries) == [
        "lint-imports",
        "mypy",
        "ruff",
        "ruff",
    ]
    for entry in entries:
        assert entry.startswith(".venv/bin/"), entry
        assert (PROJECT_ROOT / entry).is_file(), f"{entry} is missing: run make install"
