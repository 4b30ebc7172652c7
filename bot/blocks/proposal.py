"""The proposal message: the plan a person is asked to approve, with its sprint, its stories
and tasks and the existing stories it moves in (each with a checkbox that picks it; a likely
duplicate of an existing story is marked, linked and left out), warnings, usage, and the
Approve / View full plan / Reject buttons. What a long plan cannot show in full here is in the
full-plan modal."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from functools import partial

from slack_sdk.models.blocks import Block, DividerBlock

from agent.proposal import ExistingStory, Proposal, ProposedStory, ProposedTask
from agent.wording import counted
from bot.blocks.actions import decision_buttons
from bot.blocks.fitting import bullets, fit_blocks
from bot.blocks.kit import (
    SUBJECT_MAX,
    SlackMessage,
    context,
    esc_line,
    header,
    link,
    mention,
    section,
    slack_message,
)
from bot.blocks.picking import OPTION_TEXT_MAX, PickItem, pick_blocks
from bot.slack_text import escape_mrkdwn, one_line, truncate
from taiga.links import sprint_url, story_url

# Detail levels of a story (see `_story_group`): its description and its task labels shrink.
_DESCRIPTION_LIMITS = (280, 100, 0, 0)
_LABEL_LIMITS = (OPTION_TEXT_MAX, 45, 25, 0)
_LEVELS = len(_DESCRIPTION_LIMITS)
_SUBJECT_COMPACT_MAX = 80
_SUMMARY_MAX = 1000
_WARNINGS_MAX = 1500
_CONFIRM_MAX = 300
_PICK_HINT = (
    "Untick a story or task to leave it out; only what stays ticked is written. Every story "
    "and task in full, descriptions included, is in *View full plan*."
)


def proposal_blocks(
    plan_id: str,
    proposal: Proposal,
    requester_id: str,
    *,
    version: int = 1,
    model: str | None = None,
    web_url: str | None = None,
) -> SlackMessage:
    """The proposed plan: each story with checkboxes that pick it and its tasks (left-out items
    unchecked and struck through), then Approve (with a confirm saying what it writes), View
    full plan, and Reject; every control carries the plan id and `version`.

    `web_url` (Taiga's web UI) links an existing sprint; `model` is shown in the usage line.
    """
    sprint = proposal.milestone.name if proposal.milestone else proposal.target_sprint
    title = f"Sprint plan: {sprint}" + (f" (version {version})" if version > 1 else "")
    overview = f"{_sprint_line(proposal, web_url)}\n{_counts(proposal)}"
    head: list[Block] = [header(title), section(overview)]
    summary = proposal.summary.strip() or proposal.count_summary()
    head.append(section(truncate(escape_mrkdwn(summary), _SUMMARY_MAX)))
    has_items = bool(proposal.item_keys())
    if proposal.stop_cause:
        head.append(section(_stopped_line(proposal, has_items)))
    if has_items:
        head.append(context(_PICK_HINT))
    tail: list[Block] = []
    if proposal.questions:
        questions = [f":grey_question: {esc_line(q, 400)}" for q in proposal.questions]
        tail.append(section(bullets(questions, _WARNINGS_MAX, ("question", "questions"))))
    if notes := proposal.other_warnings():
        warnings = [f":warning: {esc_line(w, 400)}" for w in notes]
        tail.append(section(bullets(warnings, _WARNINGS_MAX, ("warning", "warnings"))))
    tail.append(context(_usage_line(proposal, requester_id, model)))
    tail.append(
        decision_buttons(
            plan_id, version, can_approve=has_items, can_edit=bool(proposal.item_keys()),
            approve_note=_approve_note(proposal),
        )
    )

    groups = _pick_groups(proposal, web_url)
    item_blocks: list[Block] = []
    if groups:
        item_blocks = [
            DividerBlock(),
            *fit_blocks(
                len(groups),
                lambda i, level: pick_blocks(plan_id, version, i, *groups[i](level)),
                levels=_LEVELS,
                fixed=[*head, *tail],
                reserved_blocks=1,  # the divider
                noun=("story", "stories"),
            ),
        ]

    text = f"Proposed sprint plan for {sprint}: {_counts(proposal)}. Approve or reject it."
    return slack_message(text, [*head, *item_blocks, *tail])


# One group of the message's checkboxes at a detail level: its section text and its items.
_Group = Callable[[int], tuple[str, list[PickItem]]]


def _pick_groups(proposal: Proposal, web_url: str | None) -> list[_Group]:
    """Each story, then the tasks for existing stories, then the moved stories, as a group of
    the message."""
    groups: list[_Group] = [
        partial(_story_group, proposal, number, story, web_url)
        for number, story in enumerate(proposal.stories, 1)
    ]
    if proposal.tasks_for_existing:
        groups.append(partial(_existing_group, proposal))
    if proposal.moves:
        groups.append(partial(_moves_group, proposal))
    return groups


def _stopped_line(proposal: Proposal, has_items: bool) -> str:
    """Said first, not among the warnings: a draft a budget or a cut stopped may lack items."""
    line = (
        ":warning: *This draft is incomplete*: planning stopped early "
        f"({esc_line(proposal.stop_cause, 200)})."
    )
    if proposal.cut:
        line += f" {esc_line(proposal.cut, 400)}"
    return line + (" Approve writes only what is shown here." if has_items else "")


def _approve_note(proposal: Proposal) -> str:
    actions = proposal.actions()
    stories = sum(a.kind == "story" for a in actions)
    tasks = sum(a.kind == "task" for a in actions)
    moves = sum(a.kind == "move" for a in actions)
    sprint = next((a.milestone for a in actions if a.milestone is not None), None)
    writes = f"{counted(stories, 'story', 'stories')} and {counted(tasks, 'task', 'tasks')}"
    if moves:
        writes += f", moves {counted(moves, 'existing story', 'existing stories')} into the sprint"
    if sprint is not None:
        writes += f" and the sprint *{esc_line(sprint.name, 60)}*"
    stories_out, tasks_out = proposal.left_out_counts()
    left_out = ""
    if stories_out or tasks_out:
        left = f"{counted(stories_out, 'story', 'stories')}, {counted(tasks_out, 'task', 'tasks')}"
        left_out = f" Left out (not written): {left}."
    unfinished = "Planning stopped early; this plan may be incomplete. " if proposal.stopped else ""
    return truncate(
        f"{unfinished}This creates {writes} in Taiga as you.{left_out} The full text of every "
        "item is in “View full plan”.",
        _CONFIRM_MAX,
    )


def _day(value: date | None) -> str:
    return f"{value.day} {value:%b %Y}" if value else "?"


def _sprint_line(proposal: Proposal, web_url: str | None) -> str:
    project = f"*{esc_line(proposal.project.name, 200)}*"
    milestone = proposal.milestone
    if milestone is None:
        sprint = esc_line(proposal.target_sprint, 200)
        return (
            f":warning: Sprint *{sprint}* does not exist in {project} and will not be created;"
            " the stories would go to the backlog."
        )
    name = f"*{esc_line(milestone.name, 200)}*"
    dates = f"{_day(milestone.estimated_start)} → {_day(milestone.estimated_finish)}"
    if milestone.to_create:
        return f":new: New sprint {name} in {project}, {dates} (will be created)"
    url = None
    if web_url and milestone.slug:
        url = sprint_url(web_url, proposal.project.slug, milestone.slug)
    return f":calendar: Existing sprint {link(url, name)} in {project}, {dates}"


def _counts(proposal: Proposal) -> str:
    stories = counted(len(proposal.stories), "story", "stories")
    counts = f"{stories}, {counted(proposal.task_count, 'task', 'tasks')}"
    if proposal.moves:
        counts += f", {counted(len(proposal.moves), 'story', 'stories')} moved in"
    return counts


def _story_group(
    proposal: Proposal, number: int, story: ProposedStory, web_url: str | None, level: int
) -> tuple[str, list[PickItem]]:
    """One story at a detail level (0 richest … 3 most compact): the section shows its subject,
    tags and (cut) description; its checkboxes the story and its tasks' subjects."""
    picked = proposal.is_picked(story.key)
    subject = esc_line(story.subject, SUBJECT_MAX if level < 3 else _SUBJECT_COMPACT_MAX)
    head = f"*{number}. {subject}*" if picked else f"*{number}. ~{subject}~*  _left out_"
    if story.tags and level < 3:
        head += "  " + esc_line(", ".join(story.tags), 100)
    if story.assignee or story.due_date:
        head += "  " + esc_line(owner_and_due(story), 200)
    if story.duplicate_of is not None:
        head += "\n" + _duplicate_line(proposal, story.duplicate_of, web_url)
    description = one_line(story.description)
    limit = _DESCRIPTION_LIMITS[level]
    if description and limit:
        head += f"\n_{esc_line(description, limit)}_"
    items = [PickItem(str(number), f"Story {number}", "", picked)]
    items += [
        PickItem(
            f"{number}.{j}", f"{number}.{j}", owned(task), proposal.is_picked(task.key),
            _LABEL_LIMITS[level],
        )
        for j, task in enumerate(story.tasks, 1)
    ]
    return head, items


def _existing_group(proposal: Proposal, level: int) -> tuple[str, list[PickItem]]:
    tasks = proposal.tasks_for_existing
    heading = f"*Tasks for existing stories* ({len(tasks)})"
    items = [
        PickItem(
            f"E{k}", f"E{k}", f"{owned(task)} (in {_story_ref(task)})",
            proposal.is_picked(task.key), _LABEL_LIMITS[level],
        )
        for k, task in enumerate(tasks, 1)
    ]
    return heading, items


def owned(task: ProposedTask) -> str:
    """A task's subject with its owner and due date, if any: "Write the CSV writer → Dana"."""
    extra = owner_and_due(task)
    return f"{task.subject} {extra}" if extra else task.subject


def owner_and_due(item: ProposedStory | ProposedTask) -> str:
    """"→ Dana Scott, due 11 Dec 2026", or the part of it the item has, or ""."""
    parts = [f"→ {item.assignee}"] if item.assignee else []
    if item.due_date:
        parts.append(f"due {_day(item.due_date)}")
    return ", ".join(parts)
def _duplicate_line(proposal: Proposal, existing: ExistingStory, web_url: str | None) -> str:
    url = story_url(web_url, proposal.project.slug, existing.ref) if web_url else None
    name = link(url, f"#{existing.ref} {esc_line(existing.subject, 80)}")
    where = esc_line(existing.sprint, 60) if existing.sprint else "the backlog"
    return (
        f":warning: Likely a duplicate of {name} (in {where}), so left out; tick it to create "
        "it anyway."
    )


def _moves_group(proposal: Proposal, level: int) -> tuple[str, list[PickItem]]:
    heading = f"*Existing stories moved into the sprint* ({len(proposal.moves)})"
    items = [
        PickItem(
            f"M{k}", f"M{k}",
            f"#{move.ref} {one_line(move.subject)} (from {move.from_sprint or 'the backlog'})",
            proposal.is_picked(move.key), _LABEL_LIMITS[level],
        )
        for k, move in enumerate(proposal.moves, 1)
    ]
    return heading, items


def _story_ref(task: ProposedTask) -> str:
    story = f"#{task.user_story_ref}" if task.user_story_ref else "an existing story"
    if task.user_story_subject:
        story += f" {one_line(task.user_story_subject)}"
    return story


def _usage_line(proposal: Proposal, requester_id: str, model: str | None) -> str:
    usage = proposal.usage
    parts = [f"Requested by {mention(requester_id)}"]
    if model:
        parts.append(esc_line(model, 80))
    parts.append(counted(usage.model_calls, "model call", "model calls"))
    parts.append(counted(usage.tool_calls, "tool call", "tool calls"))
    if proposal.stopped is not None:
        parts.append(f"stopped early: {esc_line(str(proposal.stopped.value), 40)}")
    return " · ".join(parts)
