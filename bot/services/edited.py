"""The edited proposal from a submitted Edit modal, or the errors to show on its fields.

Stories keep their keys; each story's tasks are numbered again in their new order
(`<story>/task-1`, …) and a task left out before keeps being left out while its line survives.
A line equal to a task as it was shown is that task unchanged; a line whose subject matches a
task keeps that task's key, and its description too when the description was not shown.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agent.proposal import SUBJECT_MAX, Proposal, ProposedMilestone, ProposedStory, ProposedTask
from bot.blocks.edit import (
    SPRINT_BLOCK,
    TASK_SEPARATORS,
    EditForm,
    SprintChoice,
    TaskField,
    description_block,
    subject_block,
    task_line,
)
from bot.slack_text import truncate
from taiga.names import milestone_named, normalise_name

Json = dict[str, Any]
_ERROR_MAX = 300


@dataclass
class _Edit:
    """What the submit collects: field errors by block id, and old task key → new key."""

    values: Json
    errors: dict[str, str] = field(default_factory=dict)
    renamed: dict[str, str] = field(default_factory=dict)

    def read(self, block_id: str) -> str | None:
        """The submitted text of a field; None when the modal did not have it."""
        if block_id not in self.values:
            return None
        return str((self.values[block_id].get(block_id) or {}).get("value") or "")


def edited_proposal(
    proposal: Proposal, form: EditForm, view: Json, sprints: tuple[SprintChoice, ...]
) -> Proposal | dict[str, str]:
    """The proposal with the modal's values, or the error of each field that is wrong."""
    edit = _Edit(values=((view.get("state") or {}).get("values") or {}))
    sprint = _sprint_update(edit, proposal, sprints)
    stories = [_edited_story(edit, number, fields.story, fields.description_editable,
                             fields.tasks)
               for number, fields in enumerate(form.stories, start=1)]
    existing = [t for group in form.existing for t in _edited_tasks(edit, group, group.tasks[0])]
    if edit.errors:
        return edit.errors
    left_out = [k for k in proposal.left_out if "/" not in k] + [
        edit.renamed[k] for k in proposal.left_out if k in edit.renamed
    ]
    return proposal.model_copy(
        update={**sprint, "stories": stories, "tasks_for_existing": existing,
                "left_out": left_out}
    )


def sprint_names(proposal: Proposal, sprints: tuple[SprintChoice, ...]) -> list[str]:
    """The sprints the modal offers, the plan's own first."""
    current = proposal.milestone
    own = current.name if current else proposal.target_sprint
    own += " (new)" if current and current.to_create else ""
    own += " (backlog)" if current is None else ""
    return [own, *(s.name for s in sprints)]


def _sprint_update(
    edit: _Edit, proposal: Proposal, sprints: tuple[SprintChoice, ...]
) -> Json:
    typed = edit.read(SPRINT_BLOCK)
    current = proposal.milestone.name if proposal.milestone else proposal.target_sprint
    if typed is None or normalise_name(typed) == normalise_name(current):
        return {}
    found = milestone_named(sprints, typed)
    if found is None:
        names = ", ".join(sprint_names(proposal, sprints))
        unknown = f"“{typed.strip()}” is not a sprint of {proposal.project.name}."
        edit.errors[SPRINT_BLOCK] = truncate(f"{unknown} Use one of: {names}.", _ERROR_MAX)
        return {}
    milestone = ProposedMilestone(existing_id=found.id, name=found.name, slug=found.slug)
    return {"milestone": milestone, "target_sprint": found.name}


def _edited_story(
    edit: _Edit, number: int, story: ProposedStory, description_editable: bool,
    tasks: TaskField,
) -> ProposedStory:
    subject = edit.read(subject_block(story.key))
    subject = story.subject if subject is None else subject.strip()
    block = subject_block(story.key)
    if not subject:
        edit.errors[block] = f"Story {number} needs a subject."
    elif len(subject) > SUBJECT_MAX:
        edit.errors[block] = (
            f"A subject can have at most {SUBJECT_MAX} characters; this one has {len(subject)}."
        )
    description = edit.read(description_block(story.key)) if description_editable else None
    new_task = ProposedTask(key="", subject="")
    return story.model_copy(
        update={
            "subject": subject,
            "description": story.description if description is None else description.strip(),
            "tasks": _edited_tasks(edit, tasks, new_task),
        }
    )


def _edited_tasks(edit: _Edit, field: TaskField, template: ProposedTask) -> list[ProposedTask]:
    """The tasks of one input; `template` is what a new task starts from (an existing story's
    task carries its story)."""
    text = edit.read(field.block_id) if field.text is not None else None
    if text is None:
        edit.renamed.update({t.key: t.key for t in field.tasks})
        return list(field.tasks)
    prefix = field.block_id.partition(":")[2]
    used: set[str] = set()
    tasks: list[ProposedTask] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        task = _task_of_line(edit, field, line, number, used, template)
        if task is None:
            continue
        key = f"{prefix}/task-{len(tasks) + 1}"
        if task.key:
            used.add(task.key)
            edit.renamed[task.key] = key
        tasks.append(task.model_copy(update={"key": key}))
    return tasks


def _task_of_line(
    edit: _Edit, field: TaskField, line: str, number: int, used: set[str],
    template: ProposedTask,
) -> ProposedTask | None:
    unused = [t for t in field.tasks if t.key not in used]
    for task in unused:
        if line == task_line(task, with_description=task.key in field.shown):
            return task
    subject, description = _split(line)
    if not subject:
        edit.errors[field.block_id] = f"Line {number} has no task subject."
        return None
    if len(subject) > SUBJECT_MAX:
        edit.errors[field.block_id] = (
            f"The task on line {number} has {len(subject)} characters; a subject can have at "
            f"most {SUBJECT_MAX}."
        )
        return None
    same = next((t for t in unused if t.subject == subject), None)
    if description is None:
        hidden = same is not None and same.key not in field.shown
        description = same.description if same is not None and hidden else ""
    base = same or template.model_copy(
        update={"key": "", "description": "", "assigned_to": None, "assignee": None}
    )
    return base.model_copy(update={"subject": subject, "description": description})


def _split(line: str) -> tuple[str, str | None]:
    """`subject — description` (or `subject -- description`); the description is None when
    the line has none."""
    for separator in TASK_SEPARATORS:
        subject, found, description = line.partition(separator)
        if found:
            return subject.strip(), description.strip()
    return line, None
