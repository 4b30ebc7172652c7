"""The proposal: what a planning run would write to Taiga once a person approves it.

It is plain data (pydantic, JSON round-trip through `model_dump(mode="json")` and
`model_validate`) so it can be stored in the `plan` table and applied later by the executor.
`Proposal.actions()` lists the writes in order with stable keys for the write ledger:

    milestone                      the sprint, only when it must be created
    move:move-<usid>               each existing story moved into the sprint
    story:new-story-1              each proposed story (into the sprint)
    task:new-story-1/task-1        each task under a proposed story
    task:existing-<usid>/task-1    each task under a story that already exists
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from agent.budgets import StopReason
from agent.wording import plural

SUBJECT_MAX = 500
DESCRIPTION_MAX = 10_000
TAG_MAX = 50


ActionKind = Literal["milestone", "move", "story", "task"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ProjectInfo(_Model):
    id: int
    slug: str
    name: str


class ProposedMilestone(_Model):
    """The target sprint: an existing one (`existing_id` set) or one to create (`to_create`)."""

    existing_id: int | None = None
    name: str
    estimated_start: date | None = None
    estimated_finish: date | None = None
    slug: str | None = None
    to_create: bool = False


class ProposedTask(_Model):
    key: str  # "new-story-1/task-1" or "existing-<usid>/task-1"
    subject: str = Field(max_length=SUBJECT_MAX)
    description: str = Field("", max_length=DESCRIPTION_MAX)
    # Only for tasks under a story that already exists in Taiga:
    user_story_id: int | None = None
    user_story_ref: int | None = None
    user_story_subject: str | None = None
    # The project member who takes it on (user id, and their name as shown), only when the
    # minutes name them unambiguously.
    assigned_to: int | None = None
    assignee: str | None = None
    due_date: date | None = None  # only when the minutes state it


class ExistingStory(_Model):
    """A story already in Taiga (one a proposed story likely duplicates)."""

    id: int
    ref: int
    subject: str
    sprint: str | None = None  # its sprint's name; None: the backlog


class ProposedStory(_Model):
    key: str  # "new-story-1"
    subject: str = Field(max_length=SUBJECT_MAX)
    description: str = Field("", max_length=DESCRIPTION_MAX)
    tags: list[str] = Field(default_factory=list)
    tasks: list[ProposedTask] = Field(default_factory=list)
    assigned_to: int | None = None
    assignee: str | None = None
    due_date: date | None = None  # only when the minutes state it
    duplicate_of: ExistingStory | None = None  # left out by default when set


class ProposedMove(_Model):
    """An existing story to move into the target sprint, as it was when proposed: a story whose
    `version` has changed since is reported and not moved."""

    key: str  # "move-<story id>"
    story_id: int
    ref: int
    subject: str
    from_milestone_id: int | None = None  # None: the backlog
    from_sprint: str | None = None
    version: int


class Usage(_Model):
    model_calls: int = 0
    tool_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_creation_tokens: int = 0


class Action(_Model):
    """One write, in the order the executor applies them.

    `depends_on` names the action whose Taiga id this one needs (`milestone` for stories when
    the sprint is new, `story:<key>` for tasks under a proposed story), else None.
    """

    key: str
    kind: ActionKind
    depends_on: str | None = None
    milestone: ProposedMilestone | None = None
    move: ProposedMove | None = None
    story: ProposedStory | None = None
    task: ProposedTask | None = None


class Proposal(_Model):
    project: ProjectInfo
    target_sprint: str  # the sprint name as the person asked for it
    milestone: ProposedMilestone | None  # None: the sprint is missing and may not be created
    stories: list[ProposedStory] = Field(default_factory=list)
    tasks_for_existing: list[ProposedTask] = Field(default_factory=list)
    moves: list[ProposedMove] = Field(default_factory=list)
    summary: str = ""
    warnings: list[str] = Field(default_factory=list)
    stopped: StopReason | None = None
    # Why planning stopped early ("the limit of 10 model calls was reached"), and what a cut
    # answer lost, if anything; also among `warnings`. Empty when the model finished.
    stop_cause: str = ""
    cut: str = ""
    usage: Usage = Field(default_factory=Usage)
    # Keys of the stories and tasks people left out before approving; a left-out story takes its
    # tasks with it. `actions()` is what remains: exactly what Approve writes.
    left_out: list[str] = Field(default_factory=list)
    # "Who is Sam? Sam Lee or Sam Ortiz — left unassigned.": names the minutes give that match
    # no single project member; the items they were meant for are left unassigned.
    questions: list[str] = Field(default_factory=list)

    def other_warnings(self) -> list[str]:
        """The warnings, less the ones saying why planning stopped early and what was cut."""
        said = f"Planning stopped early: {self.stop_cause}." if self.stop_cause else None
        return [
            w for w in self.warnings
            if not (said and w.startswith(said)) and not (self.cut and w == self.cut)
        ]

    def is_picked(self, key: str) -> bool:
        """Whether the story or task `key` will be written (a task also needs its story)."""
        if key in self.left_out:
            return False
        story_key, _, task_part = key.partition("/")
        return not task_part or story_key not in self.left_out

    def picking(self, keys: set[str], *, picked: bool) -> Proposal:
        """A copy with `keys` put back (`picked`) or left out; unknown keys are ignored."""
        known = self.item_keys()
        if picked:
            left = [k for k in self.left_out if k not in keys]
        else:
            left = self.left_out + sorted((keys & known) - set(self.left_out))
        return self.model_copy(update={"left_out": left})

    def left_out_counts(self) -> tuple[int, int]:
        """(stories, tasks) people left out; a left-out story's tasks count as left out."""
        tasks = [t for s in self.stories for t in s.tasks] + self.tasks_for_existing
        return (
            sum(not self.is_picked(s.key) for s in self.stories),
            sum(not self.is_picked(t.key) for t in tasks),
        )

    def item_keys(self) -> set[str]:
        """Every story and task key of the proposal, picked or not."""
        keys = {s.key for s in self.stories} | {m.key for m in self.moves}
        keys |= {t.key for s in self.stories for t in s.tasks}
        return keys | {t.key for t in self.tasks_for_existing}

    @property
    def task_count(self) -> int:
        return sum(len(s.tasks) for s in self.stories) + len(self.tasks_for_existing)

    @property
    def is_empty(self) -> bool:
        """True when approving would write nothing."""
        return not self.actions()

    def actions(self) -> list[Action]:
        actions: list[Action] = []
        milestone_key: str | None = None
        stories = [s for s in self.stories if self.is_picked(s.key)]
        moves = [m for m in self.moves if self.is_picked(m.key)]
        if (stories or moves) and self.milestone is not None and self.milestone.to_create:
            milestone_key = "milestone"
            actions.append(Action(key="milestone", kind="milestone", milestone=self.milestone))
        moved = {m.story_id: f"move:{m.key}" for m in moves}
        for move in moves:
            actions.append(
                Action(key=moved[move.story_id], kind="move", depends_on=milestone_key, move=move)
            )
        for story in stories:
            actions.append(
                Action(
                    key=f"story:{story.key}", kind="story", depends_on=milestone_key, story=story
                )
            )
        for story in stories:
            for task in (t for t in story.tasks if self.is_picked(t.key)):
                actions.append(
                    Action(
                        key=f"task:{task.key}",
                        kind="task",
                        depends_on=f"story:{story.key}",
                        task=task,
                    )
                )
        for task in (t for t in self.tasks_for_existing if self.is_picked(t.key)):
            depends_on = moved.get(task.user_story_id or 0)  # a story moved by this plan
            actions.append(
                Action(key=f"task:{task.key}", kind="task", depends_on=depends_on, task=task)
            )
        return actions

    def count_summary(self) -> str:
        """Our own one-line summary, used when the model gave none."""
        parts: list[str] = []
        if self.milestone is not None and self.milestone.to_create:
            parts.append(f"create sprint {self.milestone.name}")
        n_stories = len(self.stories)
        if n_stories:
            where = f" in {self.milestone.name}" if self.milestone is not None else ""
            parts.append(f"{n_stories} user {plural(n_stories, 'story', 'stories')}{where}")
        if self.moves:
            n_moves = len(self.moves)
            parts.append(f"move {n_moves} existing {plural(n_moves, 'story', 'stories')}")
        if self.task_count:
            parts.append(f"{self.task_count} {plural(self.task_count, 'task', 'tasks')}")
        if not parts:
            return "Nothing to create."
        return "Proposed: " + ", ".join(parts) + "."

