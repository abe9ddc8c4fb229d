"""Every plugin test writes a small project and runs pytest on it (in process, unless it needs
xdist workers): what a user of the plugin would see."""

from __future__ import annotations

import pytest

BASE_INI = """
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    """A pytester project with pytest-asyncio configured (and quiet about its defaults)."""
    pytester.makeini(BASE_INI)
    return pytester
