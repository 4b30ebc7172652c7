"""The plan's message after an undo: what was removed from Taiga, what was kept and why, what
was already gone, and a Retry while anything could not be removed yet."""

from __future__ import annotations

from collections.abc import Sequence

from slack_sdk.models.blocks import ActionsBlock, Block

from agent.undo import UndoItem, UndoReport
from agent.undo.report import label
from agent.wording import counted
from bot.blocks.actions import ACTIONS_BLOCK_ID, undo_button
from bot.blocks.fitting import bullets
from bot.blocks.kit import (
    SECTION_FILL,
    SlackMessage,
    context,
    esc_line,
    mention,
    section,
    slack_message,
)

_ITEM_MAX = 200


def undo_blocks(report: UndoReport, *, undone_by: str | None) -> SlackMessage:
    """The undo's report in the plan's message; Retry finishes an undo that stopped."""
    removed = counted(len(report.removed), "item", "items")
    if report.failed:
        emoji, title = ":warning:", "Plan partly undone"
    else:
        emoji, title = ":leftwards_arrow_with_hook:", "Plan undone"
    head = f"{emoji} *{title}*: {removed} removed from Taiga{_and_more(report)}"
    blocks: list[Block] = [section(head)]
    for heading, items, why in (
        ("Removed", report.removed, False),
        ("Moved back", report.moved_back, True),
        ("Kept", report.kept, True),
        ("Already deleted in Taiga", report.gone, False),
        (":x: Not removed yet", report.failed, True),
    ):
        if items:
            blocks.append(section(_listing(heading, items, with_reason=why)))
    if undone_by:
        blocks.append(context(f"Undone by {mention(undone_by)}"))
    if report.failed:
        retry = undo_button(report.plan_id, "Retry undo")
        blocks.append(ActionsBlock(block_id=ACTIONS_BLOCK_ID, elements=[retry]))
    return slack_message(f"{title}: {removed} removed{_and_more(report)}", blocks)


def _and_more(report: UndoReport) -> str:
    """What else happened, like ", 2 stories moved back, 1 kept"."""
    tail = ""
    if report.moved_back:
        tail += f", {counted(len(report.moved_back), 'story', 'stories')} moved back"
    if report.kept:
        tail += f", {len(report.kept)} kept"
    return tail


def _listing(heading: str, items: Sequence[UndoItem], *, with_reason: bool) -> str:
    """A heading ("*Kept (1)*") and a line per item ("• story #12 Export: changed in Taiga
    since")."""
    lines = []
    for item in items:
        line = "• " + esc_line(label(item), _ITEM_MAX)
        if with_reason and item.reason:
            line += ": " + esc_line(item.reason, _ITEM_MAX)
        lines.append(line)
    title = f"*{heading} ({len(items)})*\n"
    return title + bullets(lines, SECTION_FILL - len(title), ("item", "items"))


def undo_retry_blocks(sentence: str, plan_id: str) -> SlackMessage:
    """An undo that stopped and could not be resumed: why, and Retry undo."""
    retry = undo_button(plan_id, "Retry undo")
    blocks: list[Block] = [
        section(f":warning: {esc_line(sentence, 2000)}"),
        ActionsBlock(block_id=ACTIONS_BLOCK_ID, elements=[retry]),
    ]
    return slack_message(sentence, blocks)
