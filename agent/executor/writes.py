"""The writes an apply sends: one per Taiga object of the proposal, and what each one produced.

Keys come from `Proposal.actions()`, so they are the write ledger's action keys. Each story and
task is sent with an `external_reference` naming this app and its plan action, and a story's
description ends with a link back to the Slack thread the plan came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from pydantic import BaseModel

from agent.proposal import ActionKind, Proposal

# The first element of every `external_reference` we send: which program made the object.
REFERENCE_APP = "taiga-planner"
# Kinds of Taiga object that can carry an `external_reference` (sprints cannot).
REFERENCED_KINDS: frozenset[ActionKind] = frozenset({"story", "task"})

@dataclass(frozen=True)
class Write:
    """One object to create in Taiga, flattened from the proposal."""

    key: str
    kind: ActionKind
    subject: str
    description: str = ""
    tags: tuple[str, ...] = ()
    story_key: str | None = None  # task of a new (or moved) story: that story's action key
    user_story_id: int | None = None  # task of an existing story; the story a move moves
    version: int | None = None  # a move: the story's Taiga version when it was proposed
    from_milestone_id: int | None = None  # a move: the sprint it was in (None: the backlog)
    assigned_to: int | None = None  # a project member's user id
    due_date: date | None = None

    def reference(self, plan_id: str) -> tuple[str, str] | None:
        """The `external_reference` this write carries: `("taiga-planner", "<plan>:<key>")`."""
        if self.kind not in REFERENCED_KINDS:
            return None
        return (REFERENCE_APP, f"{plan_id}:{self.key}")


@dataclass(frozen=True)
class Writes:
    """The proposal's writes in the order they are applied: sprint, moves, stories, tasks."""

    sprint: Write | None
    stories: list[Write]
    tasks: list[Write]
    moves: list[Write] = field(default_factory=list)

    def all(self) -> list[Write]:
        return [*([self.sprint] if self.sprint else []), *self.moves, *self.stories, *self.tasks]


class Outcome(BaseModel):
    """The Taiga object a write produced (or that reconciliation found for it)."""

    id: int
    ref: int | None = None
    reconciled: bool = False
    version: int | None = None  # Taiga's `version` right after our write (undo compares it)
    previous_milestone_id: int | None = None  # a move: the sprint the story came from


def with_link_back(description: str, thread_link: str | None) -> str:
    """A story's description as sent: the proposal's text, then a link to the Slack thread
    (nothing for plans made through the API or the CLI)."""
    if not thread_link:
        return description
    link = f"[Planned in this Slack thread]({thread_link})"
    return f"{description.rstrip()}\n\n{link}" if description.strip() else link


def writes_of(proposal: Proposal) -> Writes:
    sprint: Write | None = None
    stories: list[Write] = []
    tasks: list[Write] = []
    moves: list[Write] = []
    for action in proposal.actions():
        if action.kind == "milestone" and action.milestone is not None:
            sprint = Write(key=action.key, kind="milestone", subject=action.milestone.name)
        elif action.kind == "move" and action.move is not None:
            move = action.move
            moves.append(
                Write(
                    key=action.key,
                    kind="move",
                    subject=move.subject,
                    user_story_id=move.story_id,
                    version=move.version,
                    from_milestone_id=move.from_milestone_id,
                )
            )
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
                    story_key=action.depends_on,
                    user_story_id=task.user_story_id,
                    assigned_to=task.assigned_to,
                    due_date=task.due_date,
                )
            )
    return Writes(sprint=sprint, stories=stories, tasks=tasks, moves=moves)
