"""Sprint names as people type them against the names Taiga holds."""

from __future__ import annotations

from taiga import MilestoneRef
from taiga.names import milestone_named, normalise_name


def test_names_match_ignoring_case_and_whitespace() -> None:
    assert normalise_name("sprint 6") == normalise_name("Sprint  6") == normalise_name("SPRINT6")
    assert normalise_name("Sprint 6") != normalise_name("Sprint 60")


def test_milestone_named_finds_the_first_match_or_none() -> None:
    sprints = [
        MilestoneRef(id=5, name="Sprint 5", slug="sprint-5", closed=False),
        MilestoneRef(id=6, name="Sprint 6", slug="sprint-6", closed=False),
    ]
    assert milestone_named(sprints, " sprint6 ") is sprints[1]
    assert milestone_named(sprints, "Sprint 7") is None
