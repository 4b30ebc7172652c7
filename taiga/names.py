"""How names people type match Taiga's (sprints, story subjects): ignoring case and whitespace."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, TypeVar


class _Named(Protocol):
    @property
    def name(self) -> str: ...


N = TypeVar("N", bound=_Named)


def normalise_name(name: str) -> str:
    """Names match ignoring case and whitespace ("sprint 6" == "Sprint  6" == "SPRINT6")."""
    return "".join(name.split()).casefold()


def milestone_named(milestones: Iterable[N], name: str) -> N | None:
    """The first sprint whose name matches `name` as `normalise_name` does, or None."""
    wanted = normalise_name(name)
    return next((m for m in milestones if normalise_name(m.name) == wanted), None)
