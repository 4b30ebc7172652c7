"""Fitting lists of items (stories, tasks, warnings) inside Slack's limits: richer renderings
give way to more compact ones, the last items first, and whatever still does not fit is
counted in a closing "…and N more" line, never refused."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from slack_sdk.models.blocks import Block

from agent.wording import counted
from bot.blocks.kit import (
    MAX_BLOCKS,
    SECTION_FILL,
    SECTION_TEXT_MAX,
    TOTAL_TEXT_BUDGET,
    section,
)
from bot.slack_text import ELLIPSIS, truncate

Noun = tuple[str, str]  # singular, plural
_SEPARATOR = "\n\n"
T = TypeVar("T")


def fit_sections(
    count: int,
    render: Callable[[int, int], str],
    *,
    levels: int,
    fixed: Sequence[Block],
    reserved_blocks: int,
    noun: Noun,
) -> list[str]:
    """Section texts for `count` items that fit in one message next to its `fixed` blocks
    (and `reserved_blocks` more); `render(i, level)` is as for `_condense`."""
    fitted = _condense(
        count, render, levels, _budget(fixed), size=lambda text: len(text) + len(_SEPARATOR)
    )
    sections, unplaced = _pack(fitted.chunks, MAX_BLOCKS - len(fixed) - reserved_blocks)
    return _with_more(sections, fitted.omitted + unplaced, noun)


def fit_blocks(
    count: int,
    render: Callable[[int, int], list[Block]],
    *,
    levels: int,
    fixed: Sequence[Block],
    reserved_blocks: int,
    noun: Noun,
) -> list[Block]:
    """The blocks of `count` items (each its own blocks, say a section with a control) that fit
    in one message next to its `fixed` blocks and `reserved_blocks` more; `render(i, level)` is
    as for `_condense`. Items that do not fit are counted in a closing "…and N more" section."""
    fitted = _condense(count, render, levels, _budget(fixed), size=_blocks_length)
    room = MAX_BLOCKS - len(fixed) - reserved_blocks - 1  # the "…and N more" line
    placed: list[Block] = []
    shown = 0
    for item in fitted.chunks:
        if len(placed) + len(item) > room:
            break
        placed.extend(item)
        shown += 1
    more = _with_more([], count - shown, noun)
    return placed + [section(line) for line in more]


def _budget(fixed: Sequence[Block]) -> int:
    return max(TOTAL_TEXT_BUDGET - sum(_text_length(b.to_dict()) for b in fixed) - 100, 500)


def _blocks_length(blocks: Sequence[Block]) -> int:
    return sum(_text_length(b.to_dict()) for b in blocks)


def bullets(lines: Sequence[str], limit: int, noun: Noun) -> str:
    """Lines joined by newlines, cut at `limit` characters with "…and N more <noun>"."""
    kept: list[str] = []
    used = 0
    for line in lines:
        if used + len(line) + 1 > limit - 40:
            break
        kept.append(line)
        used += len(line) + 1
    return "\n".join(_with_more(["\n".join(kept)] if kept else [], len(lines) - len(kept), noun))


def _text_length(value: object) -> int:
    """Characters of text a block tree carries (what `msg_blocks_too_long` counts)."""
    if isinstance(value, dict):
        return sum(_text_length(v) for k, v in value.items() if k not in ("type", "style"))
    if isinstance(value, list):
        return sum(_text_length(v) for v in value)
    return len(value) if isinstance(value, str) else 0


@dataclass(frozen=True)
class _Fitted(Generic[T]):
    chunks: list[T]
    omitted: int


def _condense(
    count: int,
    render: Callable[[int, int], T],
    levels: int,
    budget: int,
    *,
    size: Callable[[T], int],
) -> _Fitted[T]:
    """Render `count` items within `budget` characters (as `size` measures a rendering).

    `render(i, level)` gives item i at a detail level (0 = richest, `levels - 1` = most
    compact). Levels are lowered one step at a time for every item, the last items first, and
    when even the most compact rendering is too long, the last items are left out.
    """
    level = [0] * count
    cost = [size(render(i, 0)) for i in range(count)]
    total = sum(cost)
    for target in range(1, levels):
        for i in reversed(range(count)):
            if total <= budget:
                break
            total -= cost[i]
            level[i] = target
            cost[i] = size(render(i, target))
            total += cost[i]
    shown = count
    while shown > 1 and total > budget:
        shown -= 1
        total -= cost[shown]
    return _Fitted([render(i, level[i]) for i in range(shown)], count - shown)


def _pack(chunks: Sequence[str], max_sections: int) -> tuple[list[str], int]:
    """Join chunks into section texts of at most `SECTION_FILL` characters.

    Returns the section texts and how many chunks did not fit in `max_sections`.
    """
    sections: list[str] = []
    placed = 0
    for chunk in chunks:
        piece = truncate(chunk, SECTION_FILL)
        if sections and len(sections[-1]) + len(_SEPARATOR) + len(piece) <= SECTION_FILL:
            sections[-1] += _SEPARATOR + piece
        elif len(sections) < max_sections:
            sections.append(piece)
        else:
            break
        placed += 1
    return sections, len(chunks) - placed


def _with_more(sections: list[str], omitted: int, noun: Noun) -> list[str]:
    if omitted <= 0:
        return sections
    line = f"_{ELLIPSIS}and {counted(omitted, 'more ' + noun[0], 'more ' + noun[1])}_"
    if not sections:
        return [line]
    return [*sections[:-1], truncate(sections[-1], SECTION_TEXT_MAX - len(line) - 2) + "\n" + line]
