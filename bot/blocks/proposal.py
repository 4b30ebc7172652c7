"""The proposal message: the plan a person is asked to approve, with its sprint, stories,
tasks for existing stories, warnings, usage, and the Approve / Reject buttons."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from slack_sdk.models.blocks import Block, DividerBlock

from agent.proposal import Proposal, ProposedStory, ProposedTask
from agent.wording import counted
from bot.blocks.actions import decision_buttons
from bot.blocks.fitting import bullets, fit_sections
from bot.blocks.kit import (
    EXISTING_TASKS_MAX,
    SECTION_FILL,
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
from bot.slack_text import escape_mrkdwn, one_line, truncate
from taiga.links import sprint_url

_TASK_MAX = 150
_TASK_COMPACT_MAX = 80
_DESCRIPTION_MAX = 280
_DESCRIPTION_SHORT_MAX = 100
_SUMMARY_MAX = 1000
_WARNINGS_MAX = 1500
_STORY_LEVELS = 4  # see `_story_chunk`


def proposal_blocks(
    plan_id: str,
    proposal: Proposal,
    requester_id: str,
    *,
    version: int = 1,
    model: str | None = None,
    web_url: str | None = None,
) -> SlackMessage:
    """The proposed plan with Approve (value = plan id) and Reject (with a confirm) buttons.

    `web_url` (Taiga's web UI) links an existing sprint; `model` is shown in the usage line.
    """
    sprint = proposal.milestone.name if proposal.milestone else proposal.target_sprint
    title = f"Sprint plan: {sprint}" + (f" (version {version})" if version > 1 else "")
    overview = f"{_sprint_line(proposal, web_url)}\n{_counts(proposal)}"
    head: list[Block] = [header(title), section(overview)]
    summary = proposal.summary.strip() or proposal.count_summary()
    head.append(section(truncate(escape_mrkdwn(summary), _SUMMARY_MAX)))
    tail: list[Block] = []
    if proposal.tasks_for_existing:
        tail.append(section(_existing_tasks_text(proposal.tasks_for_existing)))
    if proposal.warnings:
        warnings = [f":warning: {esc_line(w, 400)}" for w in proposal.warnings]
        tail.append(section(bullets(warnings, _WARNINGS_MAX, ("warning", "warnings"))))
    tail.append(context(_usage_line(proposal, requester_id, model)))
    tail.append(
        decision_buttons(
            plan_id, version, can_approve=not proposal.is_empty,
            can_edit=bool(proposal.item_keys()),
        )
    )

    story_blocks: list[Block] = []
    if proposal.stories:
        stories = proposal.stories
        sections = fit_sections(
            len(stories),
            lambda i, level: _story_chunk(i + 1, stories[i], level),
            levels=_STORY_LEVELS,
            fixed=[*head, *tail],
            reserved_blocks=1,  # the divider
            noun=("story", "stories"),
        )
        story_blocks = [DividerBlock(), *(section(s) for s in sections)]

    text = f"Proposed sprint plan for {sprint}: {_counts(proposal)}. Approve or reject it."
    return slack_message(text, [*head, *story_blocks, *tail])


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
    return f"{stories}, {counted(proposal.task_count, 'task', 'tasks')}"


def _story_chunk(number: int, story: ProposedStory, level: int) -> str:
    """One story at a detail level: 0 full, 1 short description, 2 no description, 3 counts."""
    head = f"*{number}. {esc_line(story.subject, SUBJECT_MAX)}*"
    if story.tags:
        head += "  " + esc_line(", ".join(story.tags), 100)
    lines = [head]
    description = one_line(story.description)
    if description and level <= 1:
        limit = _DESCRIPTION_MAX if level == 0 else _DESCRIPTION_SHORT_MAX
        lines.append(f"_{esc_line(description, limit)}_")
    if level >= 3:
        if story.tasks:
            lines.append(f"      {counted(len(story.tasks), 'task', 'tasks')}")
        return "\n".join(lines)
    task_max = _TASK_MAX if level <= 1 else _TASK_COMPACT_MAX
    tasks = [f"      • {esc_line(task.subject, task_max)}" for task in story.tasks]
    head_text = "\n".join(lines)
    if not tasks:
        return head_text
    return head_text + "\n" + bullets(tasks, SECTION_FILL - len(head_text), ("task", "tasks"))


def _existing_tasks_text(tasks: Sequence[ProposedTask]) -> str:
    lines = []
    for task in tasks:
        story = f"#{task.user_story_ref}" if task.user_story_ref else "an existing story"
        if task.user_story_subject:
            story += f" {esc_line(task.user_story_subject, 80)}"
        lines.append(f"• {esc_line(task.subject, _TASK_COMPACT_MAX)}  _(in {story})_")
    heading = "*Tasks for existing stories*\n"
    return heading + bullets(lines, EXISTING_TASKS_MAX - len(heading), ("task", "tasks"))


def _usage_line(proposal: Proposal, requester_id: str, model: str | None) -> str:
    usage = proposal.usage
    parts = [f"Requested by {mention(requester_id)}"]
    if model:
        parts.append(esc_line(model, 80))
    parts.append(counted(usage.model_calls, "model call", "model calls"))
    parts.append(counted(usage.tool_calls, "tool call", "tool calls"))
    parts.append(f"{usage.input_tokens:,} input / {usage.output_tokens:,} output tokens")
    if usage.cache_read_tokens:
        parts.append(f"{usage.cache_read_tokens:,} cached")
    if proposal.stopped is not None:
        parts.append(f"stopped early: {esc_line(str(proposal.stopped.value), 40)}")
    return " · ".join(parts)
