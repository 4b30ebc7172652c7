from __future__ import annotations

from datetime import date

from agent.budgets import StopReason
from agent.proposal import (
    ProjectInfo,
    Proposal,
    ProposedMilestone,
    ProposedStory,
    ProposedTask,
    Usage,
)
from agent.tools import permissions_to_apply


def _proposal(*, to_create: bool) -> Proposal:
    return Proposal(
        project=ProjectInfo(id=1, slug="alice-peer-client-test", name="Peer"),
        target_sprint="Sprint 7",
        milestone=ProposedMilestone(
            existing_id=None if to_create else 3,
            name="Sprint 7",
            estimated_start=date(2026, 12, 1),
            estimated_finish=date(2026, 12, 14),
            to_create=to_create,
        ),
        stories=[
            ProposedStory(
                key=f"new-story-{n}",
                subject=f"Story {n}",
                tags=["p1"],
                tasks=[
                    ProposedTask(key=f"new-story-{n}/task-{k}", subject=f"T{k}") for k in (1, 2)
                ],
            )
            for n in (1, 2)
        ],
        tasks_for_existing=[
            ProposedTask(key="existing-9/task-1", subject="Fix", user_story_id=9, user_story_ref=4)
        ],
        summary="Two stories.",
        warnings=["w"],
        stopped=StopReason.WRITE_CALLS,
        usage=Usage(model_calls=1, tool_calls=2, input_tokens=10),
    )


def test_actions_are_ordered_with_stable_keys() -> None:
    keys = [a.key for a in _proposal(to_create=True).actions()]
    assert keys == [
        "milestone",
        "story:new-story-1",
        "story:new-story-2",
        "task:new-story-1/task-1",
        "task:new-story-1/task-2",
        "task:new-story-2/task-1",
        "task:new-story-2/task-2",
        "task:existing-9/task-1",
    ]


def test_actions_name_what_they_depend_on() -> None:
    actions = {a.key: a for a in _proposal(to_create=True).actions()}
    assert actions["story:new-story-1"].depends_on == "milestone"
    assert actions["task:new-story-2/task-1"].depends_on == "story:new-story-2"
    assert actions["task:existing-9/task-1"].depends_on is None
    assert actions["task:existing-9/task-1"].task.user_story_id == 9  # type: ignore[union-attr]


def test_an_existing_sprint_is_not_an_action() -> None:
    actions = _proposal(to_create=False).actions()
    assert actions[0].key == "story:new-story-1"
    assert actions[0].depends_on is None


def test_proposal_round_trips_through_json() -> None:
    proposal = _proposal(to_create=True)
    data = proposal.model_dump(mode="json")
    assert data["stopped"] == "write_calls"
    assert data["milestone"]["estimated_start"] == "2026-12-01"
    again = Proposal.model_validate(data)
    assert again == proposal
    assert [a.key for a in again.actions()] == [a.key for a in proposal.actions()]
    assert Proposal.model_validate_json(proposal.model_dump_json()) == proposal


def test_required_permissions_and_count_summary() -> None:
    proposal = _proposal(to_create=True)
    assert permissions_to_apply(proposal) == {"add_milestone", "add_us", "add_task"}
    assert proposal.count_summary() == (
        "Proposed: create sprint Sprint 7, 2 user stories in Sprint 7, 5 tasks."
    )
    empty = Proposal(project=proposal.project, target_sprint="Sprint 9", milestone=None)
    assert empty.is_empty
    assert empty.count_summary() == "Nothing to create."
