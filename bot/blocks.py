"""Block Kit rendering for the planner's messages.

Each renderer returns a `SlackMessage`: `blocks` (JSON-ready dicts built with
`slack_sdk.models.blocks`) and a short fallback `text` for notifications; pass both with
`client.chat_update(channel=..., ts=..., **message.as_kwargs())`.

Every message stays inside Slack's limits whatever it is given: at most 50 blocks, section text
≤ 3000 characters, header ≤ 150, button text ≤ 75, and a total block text under Slack's
(undocumented, ~12 000 character) `msg_blocks_too_long` threshold. Long plans are condensed
(descriptions shortened, then dropped, then task lists collapsed to counts, the last stories
first) and finally cut with "…and N more stories", never refused.

All user- or model-derived text goes through `escape_mrkdwn`; user ids are rendered as
mentions only when they look like Slack user ids.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Protocol

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

from agent.proposal import Proposal, ProposedStory, ProposedTask
from agent.wording import counted
from bot.slack_text import ELLIPSIS, escape_mrkdwn, one_line, truncate
from taiga.links import sprint_url

__all__ = [
    "ACTION_APPROVE",
    "ACTION_REJECT",
    "ACTION_RETRY",
    "CreatedLike",
    "FailedLike",
    "ResultLike",
    "SlackMessage",
    "error_blocks",
    "expired_blocks",
    "proposal_blocks",
    "rejected_blocks",
    "result_blocks",
    "status_blocks",
]

ACTION_APPROVE = "plan_approve"
ACTION_REJECT = "plan_reject"
ACTION_RETRY = "plan_retry"
ACTIONS_BLOCK_ID = "plan_actions"

MAX_BLOCKS = 50
SECTION_TEXT_MAX = 3000
HEADER_TEXT_MAX = 150
BUTTON_TEXT_MAX = 75
CONTEXT_ELEMENTS_MAX = 10
# Slack refuses messages whose blocks carry more than ~12 000 characters of text in total
# (`msg_blocks_too_long`, undocumented); stay well below it.
TOTAL_TEXT_BUDGET = 11_000
FALLBACK_TEXT_MAX = 200

_SECTION_FILL = SECTION_TEXT_MAX - 100  # room for a "…and N more" line
_SUBJECT_MAX = 200
_TASK_MAX = 150
_TASK_COMPACT_MAX = 80
_DESCRIPTION_MAX = 280
_DESCRIPTION_SHORT_MAX = 100
_SUMMARY_MAX = 1000
_WARNINGS_MAX = 1500
_EXISTING_TASKS_MAX = 2000
_FAILED_MAX = 2000
_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,30}$")
_SEPARATOR = "\n\n"
_KIND_LABELS = {"milestone": "Sprint", "story": "Story", "task": "Task"}


@dataclass(frozen=True)
class SlackMessage:
    """A rendered message: Block Kit `blocks` (dicts) and the notification `text`."""

    text: str
    blocks: list[dict[str, Any]]

    def as_kwargs(self) -> dict[str, Any]:
        return {"text": self.text, "blocks": self.blocks}


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


# --- small builders ----------------------------------------------------------------------


def _esc(text: str, limit: int) -> str:
    """One line of user-derived text, escaped and cut to `limit` characters."""
    return truncate(escape_mrkdwn(one_line(text)), limit)


def _plain(text: str, limit: int) -> str:
    return truncate(one_line(text), limit) or ELLIPSIS


def _mention(user_id: str) -> str:
    return f"<@{user_id}>" if _USER_ID.match(user_id) else escape_mrkdwn(user_id)


def _link(url: str | None, label: str) -> str:
    """`<url|label>` for an http(s) URL (label already escaped), else just the label."""
    if not url or not url.startswith(("https://", "http://")):
        return label
    safe = url.replace("&", "&amp;").replace("<", "%3C").replace(">", "%3E").replace("|", "%7C")
    return f"<{safe}|{label}>"


def _day(value: date | None) -> str:
    return f"{value.day} {value:%b %Y}" if value else "?"


def _section(text: str, block_id: str | None = None) -> SectionBlock:
    return SectionBlock(
        text=MarkdownTextObject(text=truncate(text, SECTION_TEXT_MAX)), block_id=block_id
    )


def _header(text: str) -> HeaderBlock:
    return HeaderBlock(text=PlainTextObject(text=_plain(text, HEADER_TEXT_MAX), emoji=True))


def _context(*texts: str) -> ContextBlock:
    elements = [MarkdownTextObject(text=truncate(t, SECTION_TEXT_MAX)) for t in texts if t]
    return ContextBlock(elements=elements[:CONTEXT_ELEMENTS_MAX])


def _button(
    text: str, action_id: str, value: str, *, style: str | None = None, confirm: Any = None
) -> ButtonElement:
    return ButtonElement(
        text=PlainTextObject(text=_plain(text, BUTTON_TEXT_MAX), emoji=True),
        action_id=action_id,
        value=value,
        style=style,
        confirm=confirm,
    )


def _text_length(value: Any) -> int:
    """Characters of text a block tree carries (what `msg_blocks_too_long` counts)."""
    if isinstance(value, dict):
        return sum(_text_length(v) for k, v in value.items() if k not in ("type", "style"))
    if isinstance(value, list):
        return sum(_text_length(v) for v in value)
    return len(value) if isinstance(value, str) else 0


def _message(text: str, blocks: Sequence[Block]) -> SlackMessage:
    rendered = [block.to_dict() for block in blocks]
    if len(rendered) > MAX_BLOCKS:  # renderers plan for the limit; this is a last guard
        rendered = [*rendered[: MAX_BLOCKS - 1], rendered[-1]]
    fallback = truncate(escape_mrkdwn(one_line(text)), FALLBACK_TEXT_MAX)
    return SlackMessage(text=fallback or ELLIPSIS, blocks=rendered)


# --- fitting lists of chunks into sections -------------------------------------------------


@dataclass(frozen=True)
class _Fitted:
    chunks: list[str]
    omitted: int


def _condense(count: int, render: Callable[[int, int], str], levels: int, budget: int) -> _Fitted:
    """Render `count` items within `budget` characters.

    `render(i, level)` gives item i at a detail level (0 = richest, `levels - 1` = most
    compact). Levels are lowered one step at a time for every item, the last items first, and
    when even the most compact rendering is too long, the last items are left out.
    """
    level = [0] * count
    cost = [len(render(i, 0)) + len(_SEPARATOR) for i in range(count)]
    total = sum(cost)
    for target in range(1, levels):
        for i in reversed(range(count)):
            if total <= budget:
                break
            total -= cost[i]
            level[i] = target
            cost[i] = len(render(i, target)) + len(_SEPARATOR)
            total += cost[i]
    shown = count
    while shown > 1 and total > budget:
        shown -= 1
        total -= cost[shown]
    return _Fitted([render(i, level[i]) for i in range(shown)], count - shown)


def _pack(chunks: Sequence[str], max_sections: int) -> tuple[list[str], int]:
    """Join chunks into section texts of at most `_SECTION_FILL` characters.

    Returns the section texts and how many chunks did not fit in `max_sections`.
    """
    sections: list[str] = []
    placed = 0
    for chunk in chunks:
        piece = truncate(chunk, _SECTION_FILL)
        if sections and len(sections[-1]) + len(_SEPARATOR) + len(piece) <= _SECTION_FILL:
            sections[-1] += _SEPARATOR + piece
        elif len(sections) < max_sections:
            sections.append(piece)
        else:
            break
        placed += 1
    return sections, len(chunks) - placed


def _with_more(sections: list[str], omitted: int, noun: tuple[str, str]) -> list[str]:
    if omitted <= 0:
        return sections
    line = f"_{ELLIPSIS}and {counted(omitted, 'more ' + noun[0], 'more ' + noun[1])}_"
    if not sections:
        return [line]
    return [*sections[:-1], truncate(sections[-1], SECTION_TEXT_MAX - len(line) - 2) + "\n" + line]


def _bullets(lines: Sequence[str], limit: int, noun: tuple[str, str]) -> str:
    """Lines joined by newlines, cut at `limit` characters with "…and N more <noun>"."""
    kept: list[str] = []
    used = 0
    for line in lines:
        if used + len(line) + 1 > limit - 40:
            break
        kept.append(line)
        used += len(line) + 1
    return "\n".join(_with_more(["\n".join(kept)] if kept else [], len(lines) - len(kept), noun))


# --- status ------------------------------------------------------------------------------


def status_blocks(step_lines: Sequence[str], title: str) -> SlackMessage:
    """The progress message, updated in place: a title and the steps so far (latest kept)."""
    lines = [f"• {_esc(line, 300)}" for line in step_lines if line.strip()]
    kept: list[str] = []
    used = 0
    for line in reversed(lines):
        if used + len(line) + 1 > _SECTION_FILL:
            break
        kept.insert(0, line)
        used += len(line) + 1
    if len(kept) < len(lines):
        earlier = counted(len(lines) - len(kept), "earlier step", "earlier steps")
        kept.insert(0, f"_{ELLIPSIS}{earlier}_")
    blocks: list[Block] = [_section(f"*{_esc(title, 500)}*")]
    if kept:
        blocks.append(_section("\n".join(kept)))
    return _message(title, blocks)


# --- proposal ----------------------------------------------------------------------------


def _sprint_line(proposal: Proposal, web_url: str | None) -> str:
    project = f"*{_esc(proposal.project.name, 200)}*"
    milestone = proposal.milestone
    if milestone is None:
        sprint = _esc(proposal.target_sprint, 200)
        return (
            f":warning: Sprint *{sprint}* does not exist in {project} and will not be created;"
            " the stories would go to the backlog."
        )
    name = f"*{_esc(milestone.name, 200)}*"
    dates = f"{_day(milestone.estimated_start)} → {_day(milestone.estimated_finish)}"
    if milestone.to_create:
        return f":new: New sprint {name} in {project}, {dates} (will be created)"
    url = None
    if web_url and milestone.slug:
        url = sprint_url(web_url, proposal.project.slug, milestone.slug)
    return f":calendar: Existing sprint {_link(url, name)} in {project}, {dates}"


def _counts(proposal: Proposal) -> str:
    stories = counted(len(proposal.stories), "story", "stories")
    return f"{stories}, {counted(proposal.task_count, 'task', 'tasks')}"


def _story_chunk(number: int, story: ProposedStory, level: int) -> str:
    """One story at a detail level: 0 full, 1 short description, 2 no description, 3 counts."""
    head = f"*{number}. {_esc(story.subject, _SUBJECT_MAX)}*"
    if story.tags:
        head += "  " + _esc(", ".join(story.tags), 100)
    lines = [head]
    description = one_line(story.description)
    if description and level <= 1:
        limit = _DESCRIPTION_MAX if level == 0 else _DESCRIPTION_SHORT_MAX
        lines.append(f"_{_esc(description, limit)}_")
    if level >= 3:
        if story.tasks:
            lines.append(f"      {counted(len(story.tasks), 'task', 'tasks')}")
        return "\n".join(lines)
    task_max = _TASK_MAX if level <= 1 else _TASK_COMPACT_MAX
    tasks = [f"      • {_esc(task.subject, task_max)}" for task in story.tasks]
    head_text = "\n".join(lines)
    if not tasks:
        return head_text
    return head_text + "\n" + _bullets(tasks, _SECTION_FILL - len(head_text), ("task", "tasks"))


def _existing_tasks_text(tasks: Sequence[ProposedTask]) -> str:
    lines = []
    for task in tasks:
        story = f"#{task.user_story_ref}" if task.user_story_ref else "an existing story"
        if task.user_story_subject:
            story += f" {_esc(task.user_story_subject, 80)}"
        lines.append(f"• {_esc(task.subject, _TASK_COMPACT_MAX)}  _(in {story})_")
    heading = "*Tasks for existing stories*\n"
    return heading + _bullets(lines, _EXISTING_TASKS_MAX - len(heading), ("task", "tasks"))


def _usage_line(proposal: Proposal, requester_id: str, model: str | None) -> str:
    usage = proposal.usage
    parts = [f"Requested by {_mention(requester_id)}"]
    if model:
        parts.append(_esc(model, 80))
    parts.append(counted(usage.model_calls, "model call", "model calls"))
    parts.append(counted(usage.tool_calls, "tool call", "tool calls"))
    parts.append(f"{usage.input_tokens:,} input / {usage.output_tokens:,} output tokens")
    if usage.cache_read_tokens:
        parts.append(f"{usage.cache_read_tokens:,} cached")
    if proposal.stopped is not None:
        parts.append(f"stopped early: {_esc(str(proposal.stopped.value), 40)}")
    return " · ".join(parts)


def _decision_buttons(plan_id: str, *, can_approve: bool) -> ActionsBlock:
    reject = _button(
        "Reject",
        ACTION_REJECT,
        plan_id,
        style="danger",
        confirm=ConfirmObject(
            title="Reject this plan?",
            text="Nothing will be written to Taiga.",
            confirm="Reject",
            deny="Keep it",
            style="danger",
        ),
    )
    elements = [reject]
    if can_approve:
        elements.insert(0, _button("Approve", ACTION_APPROVE, plan_id, style="primary"))
    return ActionsBlock(block_id=ACTIONS_BLOCK_ID, elements=elements)


def proposal_blocks(
    plan_id: str,
    proposal: Proposal,
    requester_id: str,
    *,
    model: str | None = None,
    web_url: str | None = None,
) -> SlackMessage:
    """The proposed plan with Approve (value = plan id) and Reject (with a confirm) buttons.

    `web_url` (Taiga's web UI) links an existing sprint; `model` is shown in the usage line.
    """
    sprint = proposal.milestone.name if proposal.milestone else proposal.target_sprint
    title = f"Sprint plan: {sprint}"
    overview = f"{_sprint_line(proposal, web_url)}\n{_counts(proposal)}"
    head: list[Block] = [_header(title), _section(overview)]
    summary = proposal.summary.strip() or proposal.count_summary()
    head.append(_section(truncate(escape_mrkdwn(summary), _SUMMARY_MAX)))
    tail: list[Block] = []
    if proposal.tasks_for_existing:
        tail.append(_section(_existing_tasks_text(proposal.tasks_for_existing)))
    if proposal.warnings:
        warnings = [f":warning: {_esc(w, 400)}" for w in proposal.warnings]
        tail.append(_section(_bullets(warnings, _WARNINGS_MAX, ("warning", "warnings"))))
    tail.append(_context(_usage_line(proposal, requester_id, model)))
    tail.append(_decision_buttons(plan_id, can_approve=not proposal.is_empty))

    story_blocks: list[Block] = []
    if proposal.stories:
        fixed = [*head, *tail]
        budget = TOTAL_TEXT_BUDGET - sum(_text_length(b.to_dict()) for b in fixed) - 100
        stories = proposal.stories
        fitted = _condense(
            len(stories), lambda i, lvl: _story_chunk(i + 1, stories[i], lvl), 4, max(budget, 500)
        )
        sections, unplaced = _pack(fitted.chunks, MAX_BLOCKS - len(fixed) - 1)
        sections = _with_more(sections, fitted.omitted + unplaced, ("story", "stories"))
        story_blocks = [DividerBlock(), *(_section(s) for s in sections)]

    text = f"Proposed sprint plan for {sprint}: {_counts(proposal)}. Approve or reject it."
    return _message(text, [*head, *story_blocks, *tail])


# --- result ------------------------------------------------------------------------------


def _created_label(item: CreatedLike) -> str:
    ref = f"#{item.ref} " if item.ref is not None else ""
    return _link(item.url, f"{ref}{_esc(item.subject, _SUBJECT_MAX)}")


def _created_story_chunk(story: CreatedLike, tasks: Sequence[CreatedLike], level: int) -> str:
    head = f"• {_created_label(story)}"
    if not tasks:
        return head
    if level >= 1:
        return f"{head}  _{counted(len(tasks), 'task', 'tasks')}_"
    lines = [f"      ◦ {_created_label(task)}" for task in tasks]
    return head + "\n" + _bullets(lines, _SECTION_FILL - len(head), ("task", "tasks"))


def _failed_text(failed: Sequence[FailedLike]) -> str:
    lines = [
        f"• {_KIND_LABELS.get(item.kind, 'Item')} {_esc(item.subject, 120)}: "
        f"{_esc(item.reason, 200)}"
        for item in failed
    ]
    heading = f":x: *Not created yet ({len(failed)})*\n"
    return heading + _bullets(lines, _FAILED_MAX - len(heading), ("item", "items"))


def result_blocks(result: ResultLike, *, approver_id: str | None = None) -> SlackMessage:
    """What the approved plan created in Taiga (links), what is missing, and a Retry button."""
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
    lines = [f"{emoji} *{title}*: {counts}"]
    if result.milestone_name:
        name = f"*{_esc(result.milestone_name, 200)}*"
        lines.append(f"Sprint {_link(result.milestone_url, name)}")
    head: list[Block] = [_section("\n".join(lines))]

    tail: list[Block] = []
    if loose_tasks:
        loose = [f"• {_created_label(t)}" for t in loose_tasks]
        heading = "*Tasks added to existing stories*\n"
        tail.append(_section(heading + _bullets(loose, _EXISTING_TASKS_MAX, ("task", "tasks"))))
    if result.failed:
        tail.append(_section(_failed_text(result.failed)))
    if approver_id:
        tail.append(_context(f"Approved by {_mention(approver_id)}"))
    if result.failed:
        tail.append(_retry_button(result.plan_id))

    body: list[Block] = []
    if stories:
        fixed = [*head, *tail]
        budget = TOTAL_TEXT_BUDGET - sum(_text_length(b.to_dict()) for b in fixed) - 100
        fitted = _condense(
            len(stories),
            lambda i, lvl: _created_story_chunk(stories[i], tasks_of[stories[i].action_key], lvl),
            2,
            max(budget, 500),
        )
        sections, unplaced = _pack(fitted.chunks, MAX_BLOCKS - len(fixed))
        sections = _with_more(sections, fitted.omitted + unplaced, ("story", "stories"))
        body = [_section(s) for s in sections]

    text = f"{title}: {counts}"
    if result.failed:
        text += f", {len(result.failed)} not created yet"
    return _message(text, [*head, *body, *tail])


# --- end states --------------------------------------------------------------------------


def rejected_blocks(user_id: str, *, summary: str | None = None) -> SlackMessage:
    """The proposal after a rejection: who rejected it; nothing was written."""
    text = f":no_entry_sign: Rejected by {_mention(user_id)}. Nothing was written to Taiga."
    blocks: list[Block] = [_section(text)]
    if summary:
        blocks.append(_context(_esc(summary, 500)))
    return _message("Sprint plan rejected. Nothing was written to Taiga.", blocks)


def expired_blocks(*, summary: str | None = None) -> SlackMessage:
    """The proposal after it expired unapproved."""
    text = (
        ":hourglass: This plan expired before anyone approved it. Nothing was written to Taiga;"
        " ask me to plan again to get a fresh proposal."
    )
    blocks: list[Block] = [_section(text)]
    if summary:
        blocks.append(_context(_esc(summary, 500)))
    return _message("Sprint plan expired. Nothing was written to Taiga.", blocks)


def _retry_button(plan_id: str) -> ActionsBlock:
    retry = _button("Retry what is missing", ACTION_RETRY, plan_id, style="primary")
    return ActionsBlock(block_id=ACTIONS_BLOCK_ID, elements=[retry])


def error_blocks(message: str, *, retry_plan_id: str | None = None) -> SlackMessage:
    """A plain sentence about what went wrong (never an exception's raw text); with
    `retry_plan_id`, a Retry button that resumes that plan."""
    body = truncate(escape_mrkdwn(message.strip()), SECTION_TEXT_MAX - 10)
    body = body or "Something went wrong."
    blocks: list[Block] = [_section(f":x: {body}")]
    if retry_plan_id:
        blocks.append(_retry_button(retry_plan_id))
    return _message(message or "Something went wrong.", blocks)
