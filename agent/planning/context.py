"""What a planning run knows before its first model call, and the views of it the model sees.

`prefetch` reads the project (permissions, sprints, members), then its sprints and all its
stories concurrently. `plan_scope` picks the target sprint: an existing one, or a new one named
and dated like the others when the user may create sprints, and splits the stories into those in
the target sprint and the open ones outside it (which the model may move in, and which proposed
stories are compared with). The `*_view` functions are
the shapes of projects, sprints, stories and members handed to the model, here and by the reads,
and `proposal_view` the shape of a current plan a refinement revises.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from agent.proposal import Proposal, ProposedMilestone, ProposedStory, ProposedTask
from agent.tools import ADD_SPRINT
from taiga.models import Member, Milestone, Project, UserStory
from taiga.names import milestone_named

if TYPE_CHECKING:
    from taiga.client import TaigaSession

DEFAULT_SPRINT_DAYS = 14
# Open stories outside the target sprint shown to the model: the most recently modified ones.
MAX_OTHER_STORIES = 200
MAX_TAGS_SHOWN = 200


@dataclass
class PlanScope:
    """What one run plans against: `milestone` takes the dates the model proposes,
    `known_stories` grows with what reads list."""

    project: Project
    milestones: list[Milestone]
    sprint_name: str
    sprint_stories: list[UserStory]
    milestone: ProposedMilestone | None
    known_stories: dict[int, UserStory]
    today: date  # the model is told it, for relative dates in the minutes
    # Every open story outside the target sprint, most recently modified first.
    other_open_stories: list[UserStory] = field(default_factory=list)

    @property
    def perms(self) -> frozenset[str]:
        """The acting user's permissions in the project: they decide which tools the run offers."""
        return self.project.my_permissions

    @property
    def shown_other_stories(self) -> list[UserStory]:
        """The open stories outside the target sprint that the model is shown."""
        return self.other_open_stories[:MAX_OTHER_STORIES]

    def sprint_name_of(self, milestone_id: int | None) -> str | None:
        """The name of a sprint of the project by id (None for the backlog or an unknown id)."""
        known = [*self.milestones, *self.project.milestones]
        return next((m.name for m in known if m.id == milestone_id), None)


async def read_project(session: TaigaSession, ref: int | str) -> Project:
    """The project by numeric id or slug, with the acting user's permissions in it."""
    if isinstance(ref, int) or ref.strip().isdigit():
        return await session.get_project(int(ref))
    return await session.get_project_by_slug(ref.strip())


async def prefetch(
    taiga: TaigaSession, project_ref: Project | int | str, sprint_name: str
) -> tuple[Project, list[Milestone], list[UserStory]]:
    """The project first (id, permissions, sprints, members), then its sprints and all its
    stories at once (one list: the target sprint's and the others are split by `plan_scope`)."""
    if isinstance(project_ref, Project):
        project = project_ref
    else:
        project = await read_project(taiga, project_ref)
    perms = project.my_permissions

    async def milestones() -> list[Milestone]:
        return await taiga.list_milestones(project.id) if "view_milestones" in perms else []

    async def stories() -> list[UserStory]:
        return await taiga.list_user_stories(project.id) if "view_us" in perms else []

    found_milestones, found_stories = await asyncio.gather(milestones(), stories())
    return project, found_milestones, found_stories


def plan_scope(
    project: Project,
    milestones: list[Milestone],
    stories: list[UserStory],
    sprint_name: str,
    today: date,
) -> PlanScope:
    """The scope of a run from what `prefetch` read; the target sprint is None when it does not
    exist and the user may not create it."""
    name = " ".join(sprint_name.split())
    milestone = _target_milestone(project, milestones, name, today)
    target_id = milestone.existing_id if milestone is not None else None
    sprint_stories = [s for s in stories if target_id is not None and s.milestone == target_id]
    in_sprint = {s.id for s in sprint_stories}
    others = [s for s in stories if not s.is_closed and s.id not in in_sprint]
    others.sort(key=lambda s: s.modified_date or s.created_date, reverse=True)
    return PlanScope(
        project=project,
        milestones=milestones,
        sprint_name=name,
        sprint_stories=sprint_stories,
        milestone=milestone,
        known_stories={s.id: s for s in stories},
        today=today,
        other_open_stories=others,
    )


def other_stories_note(scope: PlanScope) -> str | None:
    """A sentence for the person when the model was not shown every open story."""
    total = len(scope.other_open_stories)
    if total <= MAX_OTHER_STORIES:
        return None
    return (
        f"Claude saw only the {MAX_OTHER_STORIES} most recently changed of the {total} open "
        f"stories outside {scope.sprint_name}; older ones were not considered for moving."
    )


def _target_milestone(
    project: Project, milestones: list[Milestone], sprint_name: str, today: date
) -> ProposedMilestone | None:
    milestone = milestone_named(milestones, sprint_name)
    if milestone is not None:
        return ProposedMilestone(
            existing_id=milestone.id,
            name=milestone.name,
            estimated_start=milestone.estimated_start,
            estimated_finish=milestone.estimated_finish,
            slug=milestone.slug,
        )
    # listed in the project but not readable in detail
    ref = milestone_named(project.milestones, sprint_name)
    if ref is not None:
        return ProposedMilestone(existing_id=ref.id, name=ref.name, slug=ref.slug)
    if ADD_SPRINT not in project.my_permissions:
        return None
    start, finish = next_sprint_dates(milestones, today)
    return ProposedMilestone(
        name=named_like_the_others(sprint_name, milestones),
        estimated_start=start,
        estimated_finish=finish,
        to_create=True,
    )


def next_sprint_dates(milestones: list[Milestone], today: date) -> tuple[date, date]:
    """The day after the latest sprint ends (today if that day is past), for that sprint's
    length; with no sprint, today + 14 days."""
    if not milestones:
        return today, today + timedelta(days=DEFAULT_SPRINT_DAYS)
    latest = _latest(milestones)
    length = latest.estimated_finish - latest.estimated_start
    if length.days < 1:
        length = timedelta(days=DEFAULT_SPRINT_DAYS)
    start = max(latest.estimated_finish + timedelta(days=1), today)
    return start, start + length


_NUMBERED = re.compile(r"^\s*(\D*?)\s*(\d+)\s*$")


def named_like_the_others(name: str, milestones: list[Milestone]) -> str:
    """'sprint 7' becomes 'Sprint 7' when the latest sprint is called 'Sprint 6'."""
    asked = _NUMBERED.match(name)
    latest = _NUMBERED.match(_latest(milestones).name) if milestones else None
    if not asked or not latest or asked.group(1).casefold() != latest.group(1).casefold():
        return name.strip()
    return f"{latest.group(1)} {int(asked.group(2))}"


def _latest(milestones: list[Milestone]) -> Milestone:
    return max(milestones, key=lambda m: (m.estimated_finish, m.estimated_start))


# --- what the model sees -----------------------------------------------------------------------


def first_context(scope: PlanScope, tools: list[str]) -> dict[str, Any]:
    """The context in the first message: the project, the target sprint and what is in it, the
    other sprints, the members, and the tools this run offers."""
    m = scope.milestone
    assert m is not None  # the model is asked to plan only with a target sprint
    target: dict[str, Any] = {
        "name": m.name,
        "exists": not m.to_create,
        "id": m.existing_id,
        "estimated_start": m.estimated_start,
        "estimated_finish": m.estimated_finish,
    }
    if m.to_create:
        target["note"] = "Does not exist yet; the plan creates it with these dates."
    project = scope.project
    return {
        "project": {"id": project.id, "slug": project.slug, "name": project.name},
        "tools_you_may_use": tools,
        "target_sprint": target,
        "stories_already_in_target_sprint": [story_view(s) for s in scope.sprint_stories],
        "open_stories_outside_target_sprint": _other_stories(scope),
        "sprints": [
            {k: v for k, v in milestone_view(x).items() if k != "stories"} for x in scope.milestones
        ],
        "members": [member_view(x) for x in project.members],
        "project_tags": sorted(project.tags_colors)[:MAX_TAGS_SHOWN],
    }


def _other_stories(scope: PlanScope) -> dict[str, Any]:
    shown = scope.shown_other_stories
    view: dict[str, Any] = {
        "note": (
            "Open stories in the backlog or other sprints. Do not propose a new story for work "
            "one of them already covers: propose moving it into the target sprint "
            "(taiga_move_user_story) or tasks under it instead."
        ),
        "stories": [
            {**story_view(s), "sprint": scope.sprint_name_of(s.milestone) or "backlog"}
            for s in shown
        ],
    }
    if len(scope.other_open_stories) > len(shown):
        view["cut"] = f"the {len(shown)} most recently changed of {len(scope.other_open_stories)}"
    return view


def milestone_view(m: Milestone) -> dict[str, Any]:
    return {
        "id": m.id,
        "name": m.name,
        "estimated_start": m.estimated_start,
        "estimated_finish": m.estimated_finish,
        "closed": m.closed,
        "stories": [story_view(s) for s in m.user_stories],
    }


def story_view(s: UserStory) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": s.id,
        "ref": s.ref,
        "subject": s.subject,
        "sprint_id": s.milestone,
    }
    if s.status_name:
        view["status"] = s.status_name
    if s.is_closed:
        view["closed"] = True
    return view


def member_view(m: Member) -> dict[str, Any]:
    return {
        "user_id": m.id,
        "username": m.username,
        "name": m.full_name_display,
        "role": m.role_name,
    }


def proposal_view(proposal: Proposal) -> dict[str, Any]:
    """A proposal as the model revises it: what Approve would write (left-out items are not
    carried over), stories numbered as people see them in Slack, tasks within their story."""
    m = proposal.milestone
    sprint: dict[str, Any] = {"name": m.name if m else proposal.target_sprint}
    if m is not None:
        sprint |= {"to_create": m.to_create, "estimated_start": m.estimated_start,
                   "estimated_finish": m.estimated_finish}
    stories = [
        {
            "number": number,
            "subject": story.subject,
            "description": story.description,
            "tags": story.tags,
            **_owner_view(story),
            "tasks": [_task_view(t) for t in story.tasks if proposal.is_picked(t.key)],
        }
        for number, story in enumerate(proposal.stories, start=1)
        if proposal.is_picked(story.key)
    ]
    existing = [
        {**_task_view(t), "user_story_id": t.user_story_id, "user_story_ref": t.user_story_ref,
         "user_story_subject": t.user_story_subject}
        for t in proposal.tasks_for_existing
        if proposal.is_picked(t.key)
    ]
    moves = [
        {"user_story": m.story_id, "ref": m.ref, "subject": m.subject}
        for m in proposal.moves
        if proposal.is_picked(m.key)
    ]
    return {
        "target_sprint": sprint,
        "stories": stories,
        "tasks_for_existing_stories": existing,
        "stories_moved_into_the_sprint": moves,
    }


def _task_view(task: ProposedTask) -> dict[str, Any]:
    return {"subject": task.subject, "description": task.description, **_owner_view(task)}


def _owner_view(item: ProposedStory | ProposedTask) -> dict[str, Any]:
    """The owner (their user id) and due date as the model passes them again, if set."""
    view: dict[str, Any] = {}
    if item.assigned_to is not None:
        view["assignee"] = item.assigned_to
    if item.due_date is not None:
        view["due_date"] = item.due_date
    return view
