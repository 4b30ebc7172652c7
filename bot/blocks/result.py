"""The result message: what an approved plan created in Taiga (linked), what is still
missing and why, and a Retry button while anything is."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from slack_sdk.models.blocks import Block

from agent.wording import counted
from bot.blocks.actions import retry_button
from bot.blocks.fitting import bullets, fit_sections
from bot.blocks.kit import (
    EXISTING_TASKS_MAX,
    SECTION_FILL,
    SUBJECT_MAX,
    SlackMessage,
    context,
    esc_line,
    link,
    mention,
    section,
    slack_message,
)

_FAILED_MAX = 2000
_KIND_LABELS = {"milestone": "Sprint", "move": "Moving story", "story": "Story", "task": "Task"}
_STORY_LEVELS = 2  # see `_created_story_chunk`
_HISTORY_MAX = 8  # versions named in the result

# --- shapes the executor's result satisfies (agent.executor.ExecutionResult) ---------------


class CreatedLike(Protocol):
    @property
    def kind(self) -> str: ...  # "milestone" | "story" | "task"
    @property
    def action_key(self) -> str: ...
    @property
    def subject(self) -> str: ...
    @property
    def ref(self) -> int | None: ...
    @property
    def url(self) -> str: ...
    @property
    def story_key(self) -> str | None: ...  # tasks of a new story: "story:new-story-1"


class FailedLike(Protocol):
    @property
    def kind(self) -> str: ...
    @property
    def subject(self) -> str: ...
    @property
    def reason(self) -> str: ...


class RevisionLike(Protocol):
    """One version of the plan (storage.models.PlanRevision)."""

    @property
    def number(self) -> int: ...
    @property
    def kind(self) -> str: ...  # "drafted" | "edited" | "refined"
    @property
    def author_slack_id(self) -> str | None: ...


class ResultLike(Protocol):
    @property
    def plan_id(self) -> str: ...
    @property
    def complete(self) -> bool: ...
    @property
    def milestone_name(self) -> str | None: ...
    @property
    def milestone_url(self) -> str | None: ...
    @property
    def created(self) -> Sequence[CreatedLike]: ...
    @property
    def failed(self) -> Sequence[FailedLike]: ...
    @property
    def proposed_stories(self) -> int: ...
    @property
    def proposed_tasks(self) -> int: ...
    @property
    def left_out_stories(self) -> int: ...
    @property
    def left_out_tasks(self) -> int: ...


# --- rendering ------------------------------------------------------------------------------


def result_blocks(
    result: ResultLike,
    *,
    approver_id: str | None = None,
    history: Sequence[RevisionLike] = (),
    approved_version: int | None = None,
) -> SlackMessage:
    """What the approved plan created in Taiga (links), what is missing, and a Retry button;
    with more than one version of the plan, which one was approved and how each came to be."""
    created = list(result.created)
    stories = [item for item in created if item.kind == "story"]
    story_keys = {item.action_key for item in stories}
    tasks_of = {
        key: [t for t in created if t.kind == "task" and t.story_key == key] for key in story_keys
    }
    loose_tasks = [t for t in created if t.kind == "task" and t.story_key not in story_keys]

    if result.complete:
        emoji, title = ":white_check_mark:", "Sprint plan applied"
    elif getattr(result, "state", None) == "executing":
        emoji, title = ":hourglass_flowing_sand:", "Sprint plan is being applied"
    elif created:
        emoji, title = ":warning:", "Sprint plan partly applied"
    else:
        emoji, title = ":x:", "Sprint plan not applied"
    n_tasks = sum(item.kind == "task" for item in created)
    counts = (
        f"{counted(len(stories), 'story', 'stories')} and {counted(n_tasks, 'task', 'tasks')}"
        " created"
    )
    moved = [item for item in created if item.kind == "move"]
    if moved:
        counts += f", {counted(len(moved), 'story', 'stories')} moved into the sprint"
    lines = [f"{emoji} *{title}*: {counts}"]
    left_out = _left_out_sentence(result, len(stories), n_tasks)
    if left_out:
        lines.append(left_out)
    if result.milestone_name:
        name = f"*{esc_line(result.milestone_name, 200)}*"
        lines.append(f"Sprint {link(result.milestone_url, name)}")
    head: list[Block] = [section("\n".join(lines))]

    tail: list[Block] = []
    if moved:
        moved_lines = [f"• {_created_label(m)}" for m in moved]
        moved_text = bullets(moved_lines, EXISTING_TASKS_MAX, ("story", "stories"))
        tail.append(section("*Moved into the sprint*\n" + moved_text))
    if loose_tasks:
        loose = [f"• {_created_label(t)}" for t in loose_tasks]
        heading = "*Tasks added to existing stories*\n"
        tail.append(section(heading + bullets(loose, EXISTING_TASKS_MAX, ("task", "tasks"))))
    if result.failed:
        tail.append(section(_failed_text(result.failed)))
    if approver_id:
        tail.append(context(*_approval_lines(approver_id, history, approved_version)))
    if result.failed:
        tail.append(retry_button(result.plan_id))

    body: list[Block] = []
    if stories:
        sections = fit_sections(
            len(stories),
            lambda i, level: _created_story_chunk(
                stories[i], tasks_of[stories[i].action_key], level
            ),
            levels=_STORY_LEVELS,
            fixed=[*head, *tail],
            reserved_blocks=0,
            noun=("story", "stories"),
        )
        body = [section(s) for s in sections]

    text = f"{title}: {counts}"
    if left_out:
        text += f". {left_out}"
    if result.failed:
        text += f", {len(result.failed)} not created yet"
    return slack_message(text, [*head, *body, *tail])


def _approval_lines(
    approver_id: str, history: Sequence[RevisionLike], approved_version: int | None
) -> list[str]:
    """The approval line ("Approved by @x"); with several versions "Approved version 3 by @x"
    and the versions (the first and the latest ones when there are many)."""
    if len(history) < 2 or approved_version is None:
        return [f"Approved by {mention(approver_id)}"]
    shown = [_revision_label(r) for r in history]
    if len(shown) > _HISTORY_MAX:
        shown = [shown[0], "…", *shown[-(_HISTORY_MAX - 1):]]
    return [
        f"Approved version {approved_version} by {mention(approver_id)}",
        "Versions: " + " · ".join(shown),
    ]


def _revision_label(revision: RevisionLike) -> str:
    by = f" by {mention(revision.author_slack_id)}" if revision.author_slack_id else ""
    return f"{revision.number} {esc_line(revision.kind, 20)}{by}"


def _left_out_sentence(result: ResultLike, n_stories: int, n_tasks: int) -> str | None:
    """"Created 3 of 4 proposed stories; 1 left out." when people left items out, else None."""
    if not result.left_out_stories and not result.left_out_tasks:
        return None
    parts = [
        f"Created {created} of {counted(proposed, 'proposed ' + one, 'proposed ' + many)}; "
        f"{left_out} left out"
        for created, proposed, left_out, one, many in (
            (n_stories, result.proposed_stories, result.left_out_stories, "story", "stories"),
            (n_tasks, result.proposed_tasks, result.left_out_tasks, "task", "tasks"),
        )
        if left_out
    ]
    return ". ".join(parts) + "."


def _created_label(item: CreatedLike) -> str:
    ref = f"#{item.ref} " if item.ref is not None else ""
    return link(item.url, f"{ref}{esc_line(item.subject, SUBJECT_MAX)}")


def _created_story_chunk(story: CreatedLike, tasks: Sequence[CreatedLike], level: int) -> str:
    """One created story: 0 with its tasks linked, 1 with its task count."""
    head = f"• {_created_label(story)}"
    if not tasks:
        return head
    if level >= 1:
        return f"{head}  _{counted(len(tasks), 'task', 'tasks')}_"
    lines = [f"      ◦ {_created_label(task)}" for task in tasks]
    return head + "\n" + bullets(lines, SECTION_FILL - len(head), ("task", "tasks"))


def _failed_text(failed: Sequence[FailedLike]) -> str:
    lines = [
        f"• {_KIND_LABELS.get(item.kind, 'Item')} {esc_line(item.subject, 120)}: "
        f"{esc_line(item.reason, 200)}"
        for item in failed
    ]
    heading = f":x: *Not created yet ({len(failed)})*\n"
    return heading + bullets(lines, _FAILED_MAX - len(heading), ("item", "items"))
