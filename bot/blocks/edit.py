"""The Edit modal of a proposal: which of its fields can be edited in Slack, their block ids,
how tasks are written one a line, and the view itself.

`edit_form` decides the fields from the proposal alone, so the modal that is opened and the
submit that reads it agree on what was shown (a text too long for a 3000-character input, or
fields beyond the modal's 100 blocks, are not shown and stay as they are).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from slack_sdk.models.blocks import (
    Block,
    ContextBlock,
    InputBlock,
    MarkdownTextObject,
    PlainTextInputElement,
    PlainTextObject,
    SectionBlock,
)
from slack_sdk.models.views import View

from agent.proposal import SUBJECT_MAX, Proposal, ProposedStory, ProposedTask
from bot.blocks.kit import esc_line
from bot.slack_text import truncate

EDIT_CALLBACK_ID = "plan_edit_submit"
SPRINT_BLOCK = "sprint"
TASK_SEPARATOR = " — "
TASK_SEPARATORS = (TASK_SEPARATOR, " -- ")  # " -- " for keyboards without an em dash
INPUT_MAX = 3000
VIEW_BLOCKS_MAX = 100
METADATA_MAX = 3000
_LABEL_MAX = 2000
_HEAD_BLOCKS = 3  # the intro, the sprint, the notes


@dataclass(frozen=True, slots=True)
class SprintChoice:
    """A sprint of the project the plan may target (kept in the modal, so a submit needs no
    Taiga call)."""

    id: int
    name: str
    slug: str


@dataclass(frozen=True, slots=True)
class EditMetadata:
    """The modal's `private_metadata`: the plan and the version it was opened on, and the
    sprints offered."""

    plan_id: str
    version: int
    sprints: tuple[SprintChoice, ...] = ()

    def dump(self) -> str:
        """JSON within Slack's 3000 characters; sprints that do not fit are not offered."""
        sprints: list[list[Any]] = []
        for sprint in self.sprints:
            candidate = [*sprints, [sprint.id, sprint.name, sprint.slug]]
            if len(self._json(candidate)) > METADATA_MAX:
                break
            sprints = candidate
        return self._json(sprints)

    def _json(self, sprints: list[list[Any]]) -> str:
        data = {"plan": self.plan_id, "version": self.version, "sprints": sprints}
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def load(cls, text: str) -> EditMetadata:
        data = json.loads(text or "{}")
        sprints = tuple(SprintChoice(int(i), str(n), str(s)) for i, n, s in data["sprints"])
        return cls(str(data["plan"]), int(data["version"]), sprints)

    @classmethod
    def parse(cls, text: str) -> EditMetadata | None:
        """`load`, or None when `text` is not metadata this modal wrote (a forged submit)."""
        try:
            return cls.load(text)
        except (ValueError, KeyError, TypeError):
            return None


@dataclass(frozen=True, slots=True)
class TaskField:
    """One multiline input of tasks, one a line: a new story's, or an existing story's.

    `text` is None when the tasks cannot be edited here (even without descriptions they pass
    3000 characters); `shown` holds the keys of the tasks whose description is in the text."""

    block_id: str
    label: str
    tasks: tuple[ProposedTask, ...]
    text: str | None
    shown: frozenset[str]


@dataclass(frozen=True, slots=True)
class StoryFields:
    story: ProposedStory
    description_editable: bool
    tasks: TaskField


@dataclass(frozen=True, slots=True)
class EditForm:
    """What the modal shows: `stories`, the tasks of existing stories by story, and `notes` on
    what stays as it is."""

    stories: tuple[StoryFields, ...]
    existing: tuple[TaskField, ...]
    notes: tuple[str, ...]


def subject_block(story_key: str) -> str:
    return f"subject:{story_key}"


def description_block(story_key: str) -> str:
    return f"description:{story_key}"


def tasks_block(group_key: str) -> str:
    return f"tasks:{group_key}"


def existing_group_key(task: ProposedTask) -> str:
    return f"existing-{task.user_story_id}"


def task_line(task: ProposedTask, *, with_description: bool) -> str:
    if with_description and task.description:
        return f"{task.subject}{TASK_SEPARATOR}{task.description}"
    return task.subject


def existing_groups(proposal: Proposal) -> dict[str, list[ProposedTask]]:
    """The tasks for existing stories, by story, in the proposal's order."""
    groups: dict[str, list[ProposedTask]] = {}
    for task in proposal.tasks_for_existing:
        groups.setdefault(existing_group_key(task), []).append(task)
    return groups


def edit_form(proposal: Proposal) -> EditForm:
    groups = existing_groups(proposal)
    fields = _HEAD_BLOCKS + 2 * len(proposal.stories) + len(groups)
    with_descriptions = fields + len(proposal.stories) <= VIEW_BLOCKS_MAX
    notes: list[str] = []
    if not with_descriptions:
        notes.append("This plan has too many stories to edit their descriptions here; "
                     "they stay as they are.")
    stories: list[StoryFields] = []
    for number, story in enumerate(proposal.stories, start=1):
        editable = with_descriptions and len(story.description) <= INPUT_MAX
        if with_descriptions and not editable:
            notes.append(f"Story {number}'s description is over {INPUT_MAX} characters; "
                         "it stays as it is.")
        label = f"Tasks of story {number}"
        stories.append(StoryFields(story, editable, _task_field(story.key, label, story.tasks)))
    existing = []
    for key, tasks in groups.items():
        story = f"#{tasks[0].user_story_ref}" if tasks[0].user_story_ref else "an existing story"
        if tasks[0].user_story_subject:
            story += f" {tasks[0].user_story_subject}"
        existing.append(_task_field(key, f"Tasks for {story}", tasks))
    for field in (*(s.tasks for s in stories), *existing):
        if field.text is None:
            notes.append(f"{field.label}: too long to edit here; they stay as they are.")
        elif len(field.shown) < sum(bool(t.description) for t in field.tasks):
            notes.append(f"{field.label}: descriptions that do not fit on one line here are not "
                         "shown and stay as they are.")
    return EditForm(tuple(stories), tuple(existing), tuple(notes))


def _task_field(key: str, label: str, tasks: Sequence[ProposedTask]) -> TaskField:
    """The tasks one a line with their one-line descriptions, dropping the longest
    descriptions until the text fits one input."""
    shown = {t.key for t in tasks if t.description and "\n" not in t.description}

    def text() -> str:
        return "\n".join(task_line(t, with_description=t.key in shown) for t in tasks)

    by_length = sorted((t for t in tasks if t.key in shown), key=lambda t: -len(t.description))
    for task in by_length:
        if len(text()) <= INPUT_MAX:
            break
        shown.discard(task.key)
    value = text()
    return TaskField(tasks_block(key), label, tuple(tasks),
                     value if len(value) <= INPUT_MAX else None, frozenset(shown))


def edit_view(
    proposal: Proposal, form: EditForm, metadata: EditMetadata, *, sprint_names: Sequence[str]
) -> dict[str, Any]:
    """The Edit modal of `proposal` (version `metadata.version`)."""
    current = proposal.milestone.name if proposal.milestone else proposal.target_sprint
    intro = (
        f"Editing *version {metadata.version}* of the plan. Saving posts the edited plan as "
        f"version {metadata.version + 1} in the thread; nothing is written to Taiga until "
        f"someone approves it. Tasks: one a line, as `subject{TASK_SEPARATOR}description` "
        "(the description is optional); delete a line to drop a task."
    )
    blocks: list[Block] = [
        SectionBlock(text=MarkdownTextObject(text=intro)),
        _input(SPRINT_BLOCK, "Sprint", current, max_length=200,
               hint=truncate("One of: " + ", ".join(sprint_names), _LABEL_MAX)),
    ]
    if form.notes:
        notes = "\n".join(f"• {esc_line(note, 300)}" for note in form.notes)
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=truncate(notes, 3000))]))
    for number, fields in enumerate(form.stories, start=1):
        story = fields.story
        blocks.append(_input(subject_block(story.key), f"Story {number}: subject", story.subject,
                             max_length=SUBJECT_MAX))
        if fields.description_editable:
            blocks.append(_input(description_block(story.key), f"Story {number}: description",
                                 story.description, multiline=True, optional=True))
        blocks.extend(_tasks_input(fields.tasks))
    for field in form.existing:
        blocks.extend(_tasks_input(field))
    return View(
        type="modal",
        callback_id=EDIT_CALLBACK_ID,
        title=PlainTextObject(text="Edit the plan"),
        submit=PlainTextObject(text="Save as new version"),
        close=PlainTextObject(text="Cancel"),
        private_metadata=metadata.dump(),
        blocks=blocks,
    ).to_dict()


def _tasks_input(field: TaskField) -> list[Block]:
    if field.text is None:
        return []
    return [_input(field.block_id, field.label, field.text, multiline=True, optional=True)]


def _input(
    block_id: str,
    label: str,
    value: str,
    *,
    max_length: int = INPUT_MAX,
    multiline: bool = False,
    optional: bool = False,
    hint: str | None = None,
) -> InputBlock:
    """A text input whose block id is also its action id."""
    return InputBlock(
        block_id=block_id,
        label=PlainTextObject(text=truncate(label, _LABEL_MAX)),
        element=PlainTextInputElement(
            action_id=block_id, initial_value=value or None, multiline=multiline,
            max_length=max_length,
        ),
        optional=optional,
        hint=PlainTextObject(text=hint) if hint else None,
    )
