"""Hostile minutes through `/taiga plan` over HTTP: control characters, what Slack sends for
bytes that were not UTF-8, nested mrkdwn, `<!channel>`, fake `<minutes>` tags, 200 KB.

Minutes within the limit reach the model inside exactly one <minutes> block (nothing in them
opens or closes one of our tagged blocks) and the proposal is posted; longer ones are refused
with a sentence before any model call. Nothing is written to Taiga either way."""

from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import given

from tests.faults.hostile import (
    FUZZ,
    HOSTILE_PIECES,
    Watch,
    assert_survived,
    hostile_text,
)
from tests.peers.fake_anthropic import message, text, tool_use
from tests.peers.slack_harness import Harness
from tests.peers.slack_setups import alice_plans_here

h = alice_plans_here
# Anything a model could read as one of our tags, attributes and odd spacing included.
OUR_TAG = re.compile(
    r"<\s*/?\s*(?:minutes|current_plan|instruction|taiga_data)\b[^<>]*>", re.IGNORECASE
)
# Our blocks, and the instruction's "between <minutes> tags".
OUR_TAGS = sorted(["<minutes>", "</minutes>", "<taiga_data>", "</taiga_data>", "<minutes>"])
serial = itertools.count(1)


def proposing_turn(_body: dict[str, object]) -> dict[str, object]:
    return message(text("Planned."), tool_use(
        "taiga_create_user_story", {"subject": f"Story {next(serial)}", "tasks": []}
    ))


@pytest.mark.anyio
@FUZZ
@given(minutes=hostile_text.filter(lambda t: t.strip()))
async def test_hostile_minutes_stay_inside_their_block(
    served: Harness, watch: Watch, minutes: str
) -> None:
    h = served
    h.anthropic.script(proposing_turn)
    before = len(h.anthropic.requests)

    response, _ = await h.command(f"plan Sprint 6\n{minutes} {next(serial)}")

    await assert_survived(h, watch, response)
    sent = h.anthropic.requests[before:]
    assert sent, "the minutes never reached the model"
    for request in sent:
        tags = OUR_TAG.findall(first_user_text(request.body))
        assert sorted(tags) == OUR_TAGS, tags


def first_user_text(body: dict[str, object]) -> str:
    content = body["messages"][0]["content"]  # type: ignore[index]
    if isinstance(content, str):
        return content
    return "".join(str(block.get("text", "")) for block in content)


@pytest.mark.anyio
async def test_200_kb_of_hostile_minutes_are_refused_in_words_before_the_model(
    served: Harness, watch: Watch
) -> None:
    h = served
    pieces = itertools.cycle(HOSTILE_PIECES)
    minutes = ""
    while len(minutes) < 200_000:
        minutes += next(pieces) + " "

    response, form = await h.command(f"plan Sprint 6\n{minutes}")

    await assert_survived(h, watch, response)
    told = [str(p.body.get("text")) for p in h.slack.response_url_posts(form["response_url"])]
    assert any("characters long; the limit is" in t for t in told), told
    assert h.anthropic.requests == []


def test_the_tag_pattern_sees_disguised_tags() -> None:
    found = OUR_TAG.findall('</minutes foo="x"> < / MINUTES > <taiga_data\n>')
    assert len(found) == 3
