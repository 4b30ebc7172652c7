"""The "View full plan" modal: every story and task a proposal would write, in full (subjects,
tags, whole descriptions), left-out items marked, paged when a plan needs more than one modal.

A modal holds 100 blocks and a section 3000 characters: long descriptions continue in further
sections, and the plan is cut into pages with Previous / Next buttons (`ACTION_VIEW_PAGE`,
value = the page to show; the view's private metadata is the plan and version it shows).
"""

from __future__ import annotations

from typing import Any

from slack_sdk.models.blocks import ActionsBlock, Block, PlainTextObject
from slack_sdk.models.views import View

from agent.proposal import Proposal, ProposedStory, ProposedTask
from agent.wording import counted
from bot.blocks.actions import ACTION_VIEW_PAGE, plan_ref
from bot.blocks.kit import SECTION_TEXT_MAX, button, context, esc_line, section
from bot.blocks.proposal import owner_and_due
from bot.slack_text import escape_mrkdwn

FULL_PLAN_CALLBACK_ID = "plan_full"
MODAL_BLOCKS_MAX = 100
_PAGE_ITEM_BLOCKS = MODAL_BLOCKS_MAX - 2  # the page's context line and its buttons
_LEFT_OUT = "  _left out: will not be written_"


def full_plan_pages(proposal: Proposal) -> list[list[Block]]:
    """The plan's item sections cut into pages that each fit one modal (at least one page)."""
    blocks = [section(text) for text in _item_texts(proposal)]
    pages = [
        blocks[i : i + _PAGE_ITEM_BLOCKS] for i in range(0, len(blocks), _PAGE_ITEM_BLOCKS)
    ]
    return pages or [[section("This plan has no stories or tasks.")]]


def full_plan_view(plan_id: str, version: int, proposal: Proposal, page: int) -> dict[str, Any]:
    """Page `page` (0-based, clamped) of the full-plan modal of `proposal`."""
    pages = full_plan_pages(proposal)
    page = max(0, min(page, len(pages) - 1))
    stories_out, tasks_out = proposal.left_out_counts()
    stories, tasks = len(proposal.stories), proposal.task_count
    line = (
        f"Version {version} · Approve writes {stories - stories_out} of "
        f"{counted(stories, 'story', 'stories')} and {tasks - tasks_out} of "
        f"{counted(tasks, 'task', 'tasks')}"
    )
    if len(pages) > 1:
        line += f" · page {page + 1} of {len(pages)}"
    blocks: list[Block] = [context(line), *pages[page]]
    if len(pages) > 1:
        blocks.append(_page_buttons(page, len(pages)))
    return View(
        type="modal",
        callback_id=FULL_PLAN_CALLBACK_ID,
        title=PlainTextObject(text="Full plan"),
        close=PlainTextObject(text="Close"),
        private_metadata=plan_ref(plan_id, version),
        blocks=blocks,
    ).to_dict()


def _page_buttons(page: int, count: int) -> ActionsBlock:
    elements = []
    if page > 0:
        elements.append(button("Previous", f"{ACTION_VIEW_PAGE}:previous", str(page - 1)))
    if page < count - 1:
        elements.append(button("Next", f"{ACTION_VIEW_PAGE}:next", str(page + 1)))
    return ActionsBlock(elements=elements)


def _item_texts(proposal: Proposal) -> list[str]:
    texts = [f":grey_question: {esc_line(q, 500)}" for q in proposal.questions]
    for number, story in enumerate(proposal.stories, 1):
        texts += _story_texts(proposal, number, story)
        for j, task in enumerate(story.tasks, 1):
            texts += _task_texts(proposal, f"{number}.{j}", task)
    if proposal.tasks_for_existing:
        texts.append("*Tasks for existing stories*")
        for k, task in enumerate(proposal.tasks_for_existing, 1):
            texts += _task_texts(proposal, f"E{k}", task)
    if proposal.moves:
        texts.append("*Existing stories moved into the sprint*")
        for k, move in enumerate(proposal.moves, 1):
            where = esc_line(move.from_sprint or "the backlog", 200)
            line = f"• *M{k}* #{move.ref} {esc_line(move.subject, 500)}  _(from {where})_"
            texts.append(line if proposal.is_picked(move.key) else line + _LEFT_OUT)
    return texts


def _story_texts(proposal: Proposal, number: int, story: ProposedStory) -> list[str]:
    heading = f"*{number}. {esc_line(story.subject, SECTION_TEXT_MAX)}*"
    if story.tags:
        heading += "  " + esc_line(", ".join(story.tags), 500)
    if story.assignee or story.due_date:
        heading += "  " + esc_line(owner_and_due(story), 300)
    if not proposal.is_picked(story.key):
        heading += _LEFT_OUT
    if story.duplicate_of is not None:
        dup = story.duplicate_of
        heading += f"\n_Likely a duplicate of #{dup.ref} {esc_line(dup.subject, 200)}_"
    return _with_description(heading, story.description)


def _task_texts(proposal: Proposal, number: str, task: ProposedTask) -> list[str]:
    heading = f"• *{number}* {esc_line(task.subject, SECTION_TEXT_MAX)}"
    if task.user_story_ref or task.user_story_subject:
        story = f"#{task.user_story_ref}" if task.user_story_ref else "an existing story"
        subject = esc_line(task.user_story_subject or "", 200)
        heading += f"  _(in {story}{' ' + subject if subject else ''})_"
    if task.assignee or task.due_date:
        heading += "  " + esc_line(owner_and_due(task), 300)
    if not proposal.is_picked(task.key):
        heading += _LEFT_OUT
    return _with_description(heading, task.description)


def _with_description(heading: str, description: str) -> list[str]:
    """The heading and the whole description, in section texts of ≤ 3000 characters."""
    pieces = _pieces(description.strip(), SECTION_TEXT_MAX)
    if not pieces:
        return [heading]
    if len(heading) + 1 + len(pieces[0]) <= SECTION_TEXT_MAX:
        return [f"{heading}\n{pieces[0]}", *pieces[1:]]
    return [heading, *pieces]


def _pieces(text: str, limit: int) -> list[str]:
    """`text` escaped for mrkdwn, in pieces of at most `limit` characters, cut at a line end or
    a space where one is near."""
    pieces: list[str] = []
    rest = text
    while rest:
        take = min(len(rest), limit)
        while len(escape_mrkdwn(rest[:take])) > limit:  # escaping lengthens `&`, `<`, `>`
            take = take * 4 // 5
        if take < len(rest):
            take = _break_before(rest, take)
        pieces.append(escape_mrkdwn(rest[:take]).strip())
        rest = rest[take:].lstrip()
    return [piece for piece in pieces if piece]


def _break_before(text: str, end: int) -> int:
    for separator in ("\n", " "):
        cut = text.rfind(separator, 0, end)
        if cut > end // 2:
            return cut
    return end
