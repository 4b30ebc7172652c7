"""Slack's Block Kit limits, the rendered `SlackMessage`, and the small builders every
message is made of: escaped one-line text, links, mentions, sections, headers, context
lines and buttons, each cut to fit its Slack limit."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from slack_sdk.models.blocks import (
    Block,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

from bot.slack_text import ELLIPSIS, escape_mrkdwn, one_line, truncate

MAX_BLOCKS = 50
SECTION_TEXT_MAX = 3000
HEADER_TEXT_MAX = 150
BUTTON_TEXT_MAX = 75
CONTEXT_ELEMENTS_MAX = 10
# Slack refuses messages whose blocks carry more than ~12 000 characters of text in total
# (`msg_blocks_too_long`, undocumented); stay well below it.
TOTAL_TEXT_BUDGET = 11_000
FALLBACK_TEXT_MAX = 200

SECTION_FILL = SECTION_TEXT_MAX - 100  # room for a "…and N more" line
SUBJECT_MAX = 200
EXISTING_TASKS_MAX = 2000
_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,30}$")


@dataclass(frozen=True)
class SlackMessage:
    """A rendered message: Block Kit `blocks` (dicts) and the notification `text`."""

    text: str
    blocks: list[dict[str, Any]]

    def as_kwargs(self) -> dict[str, Any]:
        return {"text": self.text, "blocks": self.blocks}


def esc_line(text: str, limit: int) -> str:
    """One line of user-derived text, escaped and cut to `limit` characters."""
    return truncate(escape_mrkdwn(one_line(text)), limit)


def _plain(text: str, limit: int) -> str:
    return truncate(one_line(text), limit) or ELLIPSIS


def mention(user_id: str) -> str:
    return f"<@{user_id}>" if _USER_ID.match(user_id) else escape_mrkdwn(user_id)


def link(url: str | None, label: str) -> str:
    """`<url|label>` for an http(s) URL (label already escaped), else just the label."""
    if not url or not url.startswith(("https://", "http://")):
        return label
    safe = url.replace("&", "&amp;").replace("<", "%3C").replace(">", "%3E").replace("|", "%7C")
    return f"<{safe}|{label}>"


def section(
    text: str, block_id: str | None = None, *, accessory: ButtonElement | None = None
) -> SectionBlock:
    return SectionBlock(
        text=MarkdownTextObject(text=truncate(text, SECTION_TEXT_MAX)), block_id=block_id,
        accessory=accessory,
    )


def header(text: str) -> HeaderBlock:
    return HeaderBlock(text=PlainTextObject(text=_plain(text, HEADER_TEXT_MAX), emoji=True))


def context(*texts: str) -> ContextBlock:
    elements = [MarkdownTextObject(text=truncate(t, SECTION_TEXT_MAX)) for t in texts if t]
    return ContextBlock(elements=elements[:CONTEXT_ELEMENTS_MAX])


def button(
    text: str,
    action_id: str,
    value: str,
    *,
    style: str | None = None,
    confirm: ConfirmObject | None = None,
    url: str | None = None,
) -> ButtonElement:
    """A button; with `url` Slack opens the link (and still sends the click to the app)."""
    return ButtonElement(
        text=PlainTextObject(text=_plain(text, BUTTON_TEXT_MAX), emoji=True),
        action_id=action_id,
        value=value,
        style=style,
        confirm=confirm,
        url=url,
    )


def slack_message(text: str, blocks: Sequence[Block]) -> SlackMessage:
    """The message of `blocks`, with `text` (escaped, shortened) as its notification text."""
    rendered = [block.to_dict() for block in blocks]
    if len(rendered) > MAX_BLOCKS:  # renderers plan for the limit; this is a last guard
        rendered = [*rendered[: MAX_BLOCKS - 1], rendered[-1]]
    fallback = truncate(escape_mrkdwn(one_line(text)), FALLBACK_TEXT_MAX)
    return SlackMessage(text=fallback or ELLIPSIS, blocks=rendered)
