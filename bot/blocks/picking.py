"""The pick checkboxes on a proposal: which stories and tasks will be written.

Every story and task has a short number, shown to people and used as its checkbox's value:
"3" is the third story, "3.2" its second task, "E1" the first task for an existing story, "M1"
the first existing story moved into the sprint. A
numbered item is unchecked (and struck through) when it was left out. Slack allows 10 options
in one checkboxes element, so an item list becomes groups of 10: the first group is the
accessory of the item's section, the others follow in one actions block.

The block id of a pick section carries the plan and version it was shown with
(`pick_block_id` / `parse_pick_block_id`), like the plan buttons' values do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    CheckboxesElement,
    MarkdownTextObject,
    Option,
    SectionBlock,
)

from agent.proposal import Proposal
from bot.blocks.actions import ACTION_PICK, parse_plan_ref, plan_ref
from bot.blocks.kit import SECTION_TEXT_MAX, esc_line
from bot.slack_text import truncate

PICK_GROUP_MAX = 10  # options in one checkboxes element
OPTION_TEXT_MAX = 75
_ELEMENTS_MAX = 25  # elements in one actions block
_LEFT_OUT = " _left out_"


@dataclass(frozen=True, slots=True)
class PickItem:
    """One checkbox: the item's number (its value), its title ("Story 3", "3.2"), a label (raw
    text, cut to `label_max` characters; 0 shows the title alone) and whether it is picked."""

    number: str
    title: str
    label: str
    picked: bool
    label_max: int = 0


def item_numbers(proposal: Proposal) -> dict[str, str]:
    """Each story's and task's number → its key, in the order the proposal shows them."""
    numbers: dict[str, str] = {}
    for i, story in enumerate(proposal.stories, 1):
        numbers[str(i)] = story.key
        numbers.update({f"{i}.{j}": task.key for j, task in enumerate(story.tasks, 1)})
    for k, task in enumerate(proposal.tasks_for_existing, 1):
        numbers[f"E{k}"] = task.key
    for k, move in enumerate(proposal.moves, 1):
        numbers[f"M{k}"] = move.key
    return numbers


def pick_block_id(plan_id: str, version: int, index: int) -> str:
    """The block id of the `index`-th pick section of a plan's message."""
    return f"{plan_ref(plan_id, version)}:{index}"


def parse_pick_block_id(block_id: str) -> tuple[str, int | None]:
    """(plan id, version) from a pick section's or actions block's block id."""
    ref = block_id.removesuffix(":more").rpartition(":")[0]
    return parse_plan_ref(ref)


def pick_blocks(
    plan_id: str, version: int, index: int, text: str, items: Sequence[PickItem]
) -> list[Block]:
    """The `index`-th pick section of a plan's message: `text` with checkboxes that pick
    `items`; more than 10 items add an actions block of further checkbox groups."""
    block_id = pick_block_id(plan_id, version, index)
    groups = [items[i : i + PICK_GROUP_MAX] for i in range(0, len(items), PICK_GROUP_MAX)]
    elements = [
        _checkboxes(f"{ACTION_PICK}:{index}.{n}", group) for n, group in enumerate(groups)
    ]
    section = SectionBlock(
        block_id=block_id,
        text=MarkdownTextObject(text=truncate(text, SECTION_TEXT_MAX)),
        accessory=elements[0] if elements else None,
    )
    if len(elements) <= 1:
        return [section]
    more = ActionsBlock(block_id=f"{block_id}:more", elements=elements[1 : 1 + _ELEMENTS_MAX])
    return [section, more]


def option_label(item: PickItem) -> str:
    """ "3.2 Write the CSV writer", struck through and marked when left out, ≤ 75 chars."""
    extra = 0 if item.picked else len(_LEFT_OUT) + 2
    room = min(item.label_max, OPTION_TEXT_MAX - len(item.title) - 1 - extra)
    text = f"{item.title} {esc_line(item.label, room)}" if item.label and room > 1 else item.title
    return text if item.picked else f"~{text}~{_LEFT_OUT}"


def _checkboxes(action_id: str, items: Sequence[PickItem]) -> CheckboxesElement:
    options = [
        Option(
            value=item.number,
            text=MarkdownTextObject(text=option_label(item)),
        )
        for item in items
    ]
    picked = [option for option, item in zip(options, items, strict=True) if item.picked]
    return CheckboxesElement(action_id=action_id, options=options, initial_options=picked or None)
