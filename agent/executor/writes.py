"""The writes an apply sends: one per Taiga object of the proposal, and what each one produced.

Keys come from `Proposal.actions()`, so they are the write ledger's action keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from pydantic import BaseModel

from agent.proposal import ActionKind, Proposal


@dataclass(frozen=True)
class Write:
    """One object to create in Taiga, flattened from the proposal."""

    key: str
    kind: ActionKind
    subject: str
    description: str = ""
    tags: tuple[str, ...] = ()
    story_key: str | None = None  # task of a new story
    user_story_id: int | None = None  # task of an existing story
    assigned_to: int | None = None  # a project member's user id
    due_date: date | None = None


@dataclass(frozen=True)
class Writes:
    """The proposal's writes in the order they are applied: sprint, stories, tasks."""

    sprint: Write | None
    stories: list[Write]
    tasks: list[Write]

    def all(self) -> list[Write]:
        return [*([self.sprint] if self.sprint else []), *self.stories, *self.tasks]


class Outcome(BaseModel):
    """The Taiga object a write produced (or that reconciliation found for it)."""

    id: int
    ref: int | None = None
    reconciled: bool = False


def writes_of(proposal: Proposal) -> Writes:
    sprint: Write | None = None
    stories: list[Write] = []
    tasks: list[Write] = []
    for action in proposal.actions():
        if action.kind == "milestone" and action.milestone is not None:
            sprint = Write(key=action.key, kind="milestone", subject=action.milestone.name)
        elif action.kind == "story" and action.story is not None:
            story = action.story
            stories.append(
                Write(
                    key=action.key,
                    kind="story",
                    subject=story.subject,
                    description=story.description,
                    tags=tuple(story.tags),
                    assigned_to=story.assigned_to,
                    due_date=story.due_date,
                )
            )
        elif action.kind == "task" and action.task is not None:
            task = action.task
            tasks.append(
                Write(
                    key=action.key,
                    kind="task",
                    subject=task.subject,
                    description=task.description,
                    story_key=action.depends_on if task.user_story_id is None else None,
                    user_story_id=task.user_story_id,
                    assigned_to=task.assigned_to,
                    due_date=task.due_date,
                )
            )
    return Writes(sprint=sprint, stories=stories, tasks=tasks)
