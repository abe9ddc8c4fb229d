"""How the plugin words what it reports."""

from __future__ import annotations


def counted(number: int, noun: str) -> str:
    """``1 job``, ``2 jobs``: the number and the noun, plural where it is not 1."""
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"
