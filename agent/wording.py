"""Small wording helpers shared by every sentence we show people."""

from __future__ import annotations


def plural(n: int, one: str, many: str) -> str:
    """`one` for exactly one, else `many` ("1 story", "0 stories", "3 stories")."""
    return one if n == 1 else many


def counted(n: int, one: str, many: str) -> str:
    """The number and its noun: `counted(3, "task", "tasks")` is "3 tasks"."""
    return f"{n} {plural(n, one, many)}"


def ended(sentence: str) -> str:
    """`sentence` with a full stop, unless it already ends like a sentence."""
    return sentence if sentence.endswith((".", "!", "?")) else sentence + "."
