"""Saved run histories as test parameters: one test per ``*.json`` file that ``agents-run
export`` wrote, so that CI replays every run in flight against the agent code about to ship
(docs/durability.md, "Replaying histories in CI")."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest


def saved_histories(folder: str | os.PathLike[str]) -> list[Any]:
    """``pytest.param(path, id=name)`` for every ``*.json`` file in ``folder``, sorted, for
    ``@pytest.mark.parametrize("history", saved_histories(...))``. A folder that does not
    exist is an error here, at collection, rather than a test that silently runs nothing."""
    directory = Path(folder)
    if not directory.is_dir():
        raise FileNotFoundError(
            f"saved_histories: {str(directory)!r} is not a folder; write histories into it with "
            "agents-run export RUN_ID -o FILE"
        )
    return [pytest.param(path, id=path.stem) for path in sorted(directory.glob("*.json"))]
