"""Checks of arguments: a bad one raises ``InvalidArgument`` saying what fits.

Every timing and count parameter of the library goes through these, whichever layer takes it,
so they all accept and refuse the same values (a bool is neither a count nor seconds).
"""

from __future__ import annotations

import math

from agents_run.errors import InvalidArgument


def require_positive_int(value: object, name: str) -> int:
    """``value`` must be an int >= 1; returns it."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgument(f"{name} must be an int >= 1, got {value!r}")
    return value


def require_seconds(value: object, name: str, *, positive: bool = False) -> float:
    """``value`` must be finite seconds, >= 0 (or > 0 where ``positive``); returns it."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
        or (positive and value == 0)
    ):
        bound = "> 0" if positive else ">= 0"
        raise InvalidArgument(f"{name} must be seconds {bound}, got {value!r}")
    return value
