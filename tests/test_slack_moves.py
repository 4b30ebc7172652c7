"""Moves and likely duplicates in Slack: shown in the proposal, picked with checkboxes, applied on
Approve. Signed requests to /slack/events, loopback peers."""

from __future__ import annotations

from typing import Any

import pytest

from tests.peers.fake_anthropic import message, text, tool_use
from tests.peers.fake_taiga import PROJECT_ID, PROJECT_SLUG, SPRINT6_ID
from tests.peers.slack_harness import Harness, block_text

Json = dict[str, Any]
MINUTES = "We take the first bulk story into this sprint.\nNew: bulk story one, again."
STORY_URL = f"https://taiga.example.test/project/{PROJECT_SLUG}/us/4"  # Bulk story one, backlog


async def _propose(h: Harness, *calls: Json) -> str:
    await h.link(h.alice, "alice")
    await h.set_project()
    h.anthropic.script(message(text("Planned."), *calls))
    response, _ = await h.command(f"plan Sprint 6\n{MINUTES}")
    assert response.status_code == 200
    return await h.proposal_ts()


def _ticked(blocks: list[Json]) -> dict[str, bool]:
    found: dict[str, bool] = {}
    for block in blocks:
        for element in [block.get("accessory") or {}, *block.get("elements", [])]:
            if element.get("type") == "checkboxes":
                ticked = {o["value"] for o in element.get("initial_options") or []}
                found |= {o["value"]: o["value"] in ticked for o in element["options"]}
    return found


def _story(h: Harness, subject: str) -> list[Json]:
    return [s for s in h.taiga.stories(PROJECT_ID) if s["subject"] == subject]


@pytest.mark.anyio
async def test_a_duplicate_is_linked_and_left_out_and_ticking_it_creates_it(h: Harness) -> None:
    proposal_ts = await _propose(
        h,
        tool_use("taiga_create_user_story", {"subject": "Bulk story: one"}),
        tool_use("taiga_create_user_story", {"subject": "Reset a forgotten password"}),
    )
    shown = h.slack.message(h.channel, proposal_ts)
    assert f"Likely a duplicate of <{STORY_URL}|#4 Bulk story one> (in the backlog)" in (
        block_text(shown)
    )
    assert _ticked(shown["blocks"]) == {"1": False, "2": True}

    await h.tick(proposal_ts, "1", ticked=True)
    await h.settle()
    assert _ticked(h.slack.message(h.channel, proposal_ts)["blocks"])["1"] is True

    await h.click("plan_approve", proposal_ts)
    await h.wait_update(lambda p: "applied" in str(p.get("text")))
    await h.settle()
    assert len(_story(h, "Bulk story: one")) == 1
    assert len(_story(h, "Reset a forgotten password")) == 1


@pytest.mark.anyio
async def test_a_duplicate_left_out_is_not_created(h: Harness) -> None:
    proposal_ts = await _propose(
        h,
        tool_use("taiga_create_user_story", {"subject": "Bulk story: one"}),
        tool_use("taiga_create_user_story", {"subject": "Reset a forgotten password"}),
    )
    await h.click("plan_approve", proposal_ts)
    await h.wait_update(lambda p: "applied" in str(p.get("text")))
    await h.settle()
    assert _story(h, "Bulk story: one") == []
    assert len(_story(h, "Reset a forgotten password")) == 1


@pytest.mark.anyio
async def test_a_backlog_story_moved_in_is_shown_pickable_and_moved_on_approve(
    h: Harness,
) -> None:
    proposal_ts = await _propose(h, tool_use("taiga_move_user_story", {"user_story": 4}))
    shown = h.slack.message(h.channel, proposal_ts)
    assert "Existing stories moved into the sprint" in block_text(shown)
    assert _ticked(shown["blocks"]) == {"M1": True}

    await h.click("plan_approve", proposal_ts)
    result = await h.wait_update(lambda p: "applied" in str(p.get("text")))
    await h.settle()
    assert _story(h, "Bulk story one")[0]["milestone"] == SPRINT6_ID
    assert "1 story moved into the sprint" in str(result.get("text")) + block_text(result)
