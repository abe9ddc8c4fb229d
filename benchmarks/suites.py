"""Test suites written to a temporary folder, for the plugin's figures (P1 to P3)."""

from __future__ import annotations

import tempfile
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# A fixture a user would write instead of the plugin's: fresh in-memory infra, reset after.
HAND_WRITTEN_FIXTURE = """
import pytest
from agents_run import Infra, reset_infra, set_infra

def pytest_configure(config):
    config.addinivalue_line("markers", "deterministic: (the anchor ignores it)")

@pytest.fixture
def infra():
    made = Infra.in_memory()
    set_infra(made)
    yield made
    reset_infra()
"""


@contextmanager
def suite(
    tests: int,
    body: str,
    *,
    imports: str = "",
    fixture: str = "",
    decorator: str = "",
    conftest: str = "",
) -> Iterator[Path]:
    """A folder of ``tests`` tests, 100 a file: ``<decorator> def test_N(<fixture>): <body>``."""
    with tempfile.TemporaryDirectory(prefix="agents-run-bench-") as folder:
        root = Path(folder)
        (root / "pytest.ini").write_text("[pytest]\n")
        if conftest:
            (root / "conftest.py").write_text(conftest)
        for start in range(0, tests, 100):
            cases = [
                (f"{decorator}\n" if decorator else "")
                + f"def test_{n}({fixture}):\n"
                + textwrap.indent(textwrap.dedent(body).strip("\n"), "    ")
                for n in range(start, min(tests, start + 100))
            ]
            module = textwrap.dedent(imports).strip("\n") + "\n\n\n" + "\n\n\n".join(cases)
            (root / f"test_{start // 100:03d}.py").write_text(module + "\n")
        yield root
