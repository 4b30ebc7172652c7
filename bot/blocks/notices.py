"""The short messages around a plan: progress while planning, an error, and the proposal's
end states (rejected, expired)."""

from __future__ import annotations

from collections.abc import Sequence

from slack_sdk.models.blocks import Block

from agent.wording import counted
from bot.blocks.actions import retry_button
from bot.blocks.kit import (
    SECTION_FILL,
    SECTION_TEXT_MAX,
    SlackMessage,
    context,
    esc_line,
    mention,
    section,
    slack_message,
)
from bot.slack_text import ELLIPSIS, escape_mrkdwn, truncate


def status_blocks(step_lines: Sequence[str], title: str) -> SlackMessage:
    """The progress message, updated in place: a title and the steps so far (latest kept)."""
    lines = [f"• {esc_line(line, 300)}" for line in step_lines if line.strip()]
    kept: list[str] = []
    used = 0
    for line in reversed(lines):
        if used + len(line) + 1 > SECTION_FILL:
            break
        kept.insert(0, line)
        used += len(line) + 1
    if len(kept) < len(lines):
        earlier = counted(len(lines) - len(kept), "earlier step", "earlier steps")
        kept.insert(0, f"_{ELLIPSIS}{earlier}_")
    blocks: list[Block] = [section(f"*{esc_line(title, 500)}*")]
    if kept:
        blocks.append(section("\n".join(kept)))
    return slack_message(title, blocks)


def error_blocks(message: str, *, retry_plan_id: str | None = None) -> SlackMessage:
    """A plain sentence about what went wrong (never an exception's raw text); with
    `retry_plan_id`, a Retry button that resumes that plan."""
    body = truncate(escape_mrkdwn(message.strip()), SECTION_TEXT_MAX - 10)
    body = body or "Something went wrong."
    blocks: list[Block] = [section(f":x: {body}")]
    if retry_plan_id:
        blocks.append(retry_button(retry_plan_id))
    return slack_message(message or "Something went wrong.", blocks)


def rejected_blocks(user_id: str, *, summary: str | None = None) -> SlackMessage:
    """The proposal after a rejection: who rejected it; nothing was written."""
    text = f":no_entry_sign: Rejected by {mention(user_id)}. Nothing was written to Taiga."
    return _end_state(text, summary, "Sprint plan rejected. Nothing was written to Taiga.")


def replaced_blocks(
    version: int, new_version: int, author_id: str, *, summary: str | None = None
) -> SlackMessage:
    """An old version of a proposal, after someone made a newer one: its buttons are gone."""
    text = (
        f":arrows_counterclockwise: Version {version} was replaced by version {new_version} "
        f"({mention(author_id)}), posted below in this thread."
    )
    return _end_state(text, summary, f"Replaced by version {new_version}.")


def expired_blocks(*, summary: str | None = None) -> SlackMessage:
    """The proposal after it expired unapproved."""
    text = (
        ":hourglass: This plan expired before anyone approved it. Nothing was written to Taiga;"
        " ask me to plan again to get a fresh proposal."
    )
    return _end_state(text, summary, "Sprint plan expired. Nothing was written to Taiga.")


def _end_state(text: str, summary: str | None, fallback: str) -> SlackMessage:
    blocks: list[Block] = [section(text)]
    if summary:
        blocks.append(context(esc_line(summary, 500)))
    return slack_message(fallback, blocks)
