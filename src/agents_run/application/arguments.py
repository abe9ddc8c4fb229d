"""Checks of public calls' arguments: a bad one raises ``InvalidArgument`` saying what fits."""

from __future__ import annotations

import math

from agents_run.errors import InvalidArgument


def require_positive_int(value: object, name: str) -> None:
    """``value`` must be an int >= 1 (a bool is not an int here)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgument(f"{name} must be an int >= 1, got {value!r}")


def require_seconds(value: object, name: str, *, positive: bool = False) -> None:
    """``value`` must be a finite number of seconds, >= 0 (or > 0 where ``positive``)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
        or (positive and value == 0)
    ):
        bound = "> 0" if positive else ">= 0"
        raise InvalidArgument(f"{name} must be seconds {bound}, got {value!r}")
