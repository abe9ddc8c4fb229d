"""Where two JSON values first differ, in short lines: the path of the first differing value,
long strings shown as a window around their first differing character, every line bounded.

One formatter for every report of a difference: the pytest plugin's divergence and golden-trace
reports, and a replay's ``NondeterministicReplay`` (``seq 2 RunStep data.items[3].title:
recorded "a", now "b"``).
"""

from __future__ import annotations

import json
from typing import Any

WIDTH = 100  # no report line is longer
SHORT = 40  # characters of a value shown whole before it is cut
_WINDOW = 24  # characters shown on each side of the first differing character of a long string


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()  # the side of a difference where a key or list item is absent


def first_difference(left: Any, right: Any, path: str = "") -> tuple[str, Any, Any]:
    """The path (``data.items[3].title``; ``path`` where the values differ as a whole) of the
    first value that differs, and that value on each side (``MISSING`` where absent)."""
    if isinstance(left, dict) and isinstance(right, dict):
        for key in sorted(set(left) | set(right)):
            ours, theirs = left.get(key, MISSING), right.get(key, MISSING)
            if ours != theirs or (ours is MISSING) != (theirs is MISSING):
                step = f".{key}" if str(key).isidentifier() else f"[{json.dumps(key)}]"
                return first_difference(ours, theirs, (path + step).lstrip("."))
    if isinstance(left, list) and isinstance(right, list):
        for index in range(max(len(left), len(right))):
            ours = left[index] if index < len(left) else MISSING
            theirs = right[index] if index < len(right) else MISSING
            if ours != theirs or (ours is MISSING) != (theirs is MISSING):
                return first_difference(ours, theirs, f"{path}[{index}]")
    return path, left, right


def long_strings(left: Any, right: Any) -> bool:
    """True where both are strings too long to show whole side by side."""
    return isinstance(left, str) and isinstance(right, str) and len(left) + len(right) > SHORT


def first_differing_character(left: Any, right: Any) -> int | None:
    """Where two long strings first differ (0-based); None unless ``long_strings``."""
    if not long_strings(left, right):
        return None
    return next(
        (i for i, (a, b) in enumerate(zip(left, right, strict=False)) if a != b),
        min(len(left), len(right)),
    )


def shown(value: Any, at: int | None, room: int) -> str:
    """``value`` as JSON: a window around character ``at`` of a string, else cut to ``room``."""
    if at is None or not isinstance(value, str):
        return short(value, room)
    start, end = max(0, at - _WINDOW), at + _WINDOW
    text = json.dumps(value[start:end], ensure_ascii=False)
    return ("…" if start else "") + text + ("…" if end < len(value) else "")


def short(value: Any, width: int = SHORT) -> str:
    """``value`` as JSON of at most ``width`` characters; ``(missing)`` for ``MISSING``."""
    if value is MISSING:
        return "(missing)"
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    return text if len(text) <= width else text[: width - 1] + "…"


def bounded(line: str, width: int = WIDTH) -> str:
    """``line`` cut to ``width`` characters."""
    return line if len(line) <= width else line[: width - 1] + "…"


def difference_line(
    where: str,
    left: Any,
    right: Any,
    *,
    prefix: str = "",
    left_name: str = "recorded",
    right_name: str = "now",
) -> str:
    """``{where} {prefix}.{path}: {left_name} {value}, {right_name} {value}``, in one line, for
    two values that differ (``MISSING`` where one side has none)."""
    path, ours, theirs = first_difference(left, right, prefix)
    at = first_differing_character(ours, theirs)
    named = f", from character {at + 1}" if at is not None else ""
    head = f"{where} {path}" if path else where
    return (
        f"{head}{named}: {left_name} {shown(ours, at, SHORT)}, "
        f"{right_name} {shown(theirs, at, SHORT)}"
    )
