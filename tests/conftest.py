from __future__ import annotations

from collections.abc import Iterator

import pytest

from agents_run import Infra, reset_infra, set_infra


@pytest.fixture
def infra() -> Iterator[Infra]:
    """Fresh in-memory infra for one test (the plugin's fixture replaces this one)."""
    fresh = Infra.in_memory()
    set_infra(fresh)
    yield fresh
    reset_infra()
