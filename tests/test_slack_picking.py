"""Shaping a proposal before Approve: leaving stories and tasks out, and seeing everything that
would be written in the full-plan modal. Signed requests to /slack/events, loopback peers."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from bot.services.decisions import NOTHING_PICKED
from storage import repositories as repo
from storage.plan_states import Transition
from tests.peers.fake_anthropic import message, text, tool_use
from tests.peers.fake_taiga import PROJECT_ID
from tests.peers.slack_harness import WAIT, Harness, block_text, story_turn

Json = dict[str, Any]
MINUTES = "We agreed to ship the CSV export.\nAlice: add the download button."
STORIES = (
    ("Export plans as CSV", ["Write the CSV writer", "Add the download button"]),
    ("Show export history", ["List past exports"]),
    ("Email the export", ["Send the mail"]),
)


async def _propose(h: Harness, turn: Json | None = None) -> str:
    """Alice (linked, the channel's project set) asks for a plan; the proposal message's ts."""
    await h.link(h.alice, "alice")
    await h.set_project()
    h.anthropic.script(turn or story_turn(*STORIES))
    response, _ = await h.command(f"plan Sprint 6\n{MINUTES}")
    assert response.status_code == 200
    return await h.proposal_ts()


def _options(blocks: list[Json]) -> dict[str, tuple[bool, str]]:
    """Every checkbox option of a message: value → (ticked, its text)."""
    found: dict[str, tuple[bool, str]] = {}
    for block in blocks:
        for element in [block.get("accessory") or {}, *block.get("elements", [])]:
            if element.get("type") != "checkboxes":
                continue
            ticked = {o["value"] for o in element.get("initial_options") or []}
            for option in element["options"]:
                found[option["value"]] = (option["value"] in ticked, option["text"]["text"])
    return found


def _approve_confirm(blocks: list[Json]) -> str:
    for block in blocks:
        for element in block.get("elements", []):
            if element.get("action_id") == "plan_approve":
                return str(element["confirm"]["text"]["text"])
    raise AssertionError("no Approve button")


@pytest.mark.anyio
async def test_left_out_items_are_not_written_and_the_result_says_how_many(h: Harness) -> None:
    proposal_ts = await _propose(h)

    await h.tick(proposal_ts, "2", ticked=False)
    await h.settle()
    await h.tick(proposal_ts, "1.2", ticked=False)
    await h.settle()

    shown = h.slack.message(h.channel, proposal_ts)
    options = _options(shown["blocks"])
    assert options["2"][0] is False and "left out" in options["2"][1]
    assert options["2.1"][0] is False  # a left-out story takes its tasks along
    assert options["1.2"] == (False, "~1.2 Add the download button~ _left out_")
    assert options["1"][0] and options["1.1"][0] and options["3"][0] and options["3.1"][0]
    assert "This creates 2 stories and 2 tasks" in _approve_confirm(shown["blocks"])

    await h.click("plan_approve", proposal_ts)
    result = await h.wait_update(lambda p: "applied" in str(p.get("text")))
    await h.settle()

    stories = {s["subject"] for s in h.taiga.stories(PROJECT_ID)}
    tasks = {t["subject"] for t in h.taiga.tasks(PROJECT_ID)}
    assert {"Export plans as CSV", "Email the export"} <= stories
    assert "Show export history" not in stories
    assert {"Write the CSV writer", "Send the mail"} <= tasks
    assert not {"Add the download button", "List past exports"} & tasks
    assert len(h.taiga.requests_to("POST", "/userstories")) == 2
    assert len(h.taiga.requests_to("POST", "/tasks")) == 2
    said = block_text(result)
    assert "Created 2 of 3 proposed stories; 1 left out" in said
    assert "Created 2 of 4 proposed tasks; 2 left out" in said


@pytest.mark.anyio
async def test_ticking_an_item_again_puts_it_back(h: Harness) -> None:
    proposal_ts = await _propose(h)
    await h.tick(proposal_ts, "2", ticked=False)
    await h.settle()

    await h.tick(proposal_ts, "2.1", ticked=True)  # a task of the left-out story
    await h.settle()

    plan = (await h.plans())[0]
    assert plan.proposal["left_out"] == []
    assert all(ticked for ticked, _ in _options(h.slack.message(h.channel, proposal_ts)["blocks"])
               .values())


@pytest.mark.anyio
async def test_two_picks_at_once_both_stick(h: Harness) -> None:
    proposal_ts = await _propose(h)
    first = h.slack.checkbox_action_payload(h.channel, proposal_ts, "2", ticked=False,
                                            user=h.alice)
    second = h.slack.checkbox_action_payload(h.channel, proposal_ts, "1.2", ticked=False,
                                             user=h.alice)

    await asyncio.gather(h.payload(first), h.payload(second))
    await h.settle()

    plan = (await h.plans())[0]
    assert sorted(plan.proposal["left_out"]) == ["new-story-1/task-2", "new-story-2"]
    options = _options(h.slack.message(h.channel, proposal_ts)["blocks"])
    assert options["2"][0] is False and options["1.2"][0] is False


@pytest.mark.anyio
async def test_someone_who_may_not_approve_cannot_pick(h: Harness) -> None:
    proposal_ts = await _propose(h)
    await h.link(h.bob, "alice")
    updates = len(h.slack.calls("chat.update"))

    _, response_url = await h.tick(proposal_ts, "2", ticked=False, user=h.bob)

    post = await h.slack.wait_for_response_url(response_url, within=WAIT)
    assert post.body["text"] == f"Only <@{h.alice}> can approve this."
    await h.settle()
    assert (await h.plans())[0].proposal["left_out"] == []
    assert len(h.slack.calls("chat.update")) == updates


@pytest.mark.anyio
async def test_a_pick_on_a_replaced_version_or_a_decided_plan_does_nothing(h: Harness) -> None:
    proposal_ts = await _propose(h)
    plan = (await h.plans())[0]
    stale = h.slack.checkbox_action_payload(h.channel, proposal_ts, "2", ticked=False,
                                            user=h.alice)
    await h.db.run(
        lambda s: repo.store_new_version(
            s, plan_id=plan.id, seen_version=1, proposal=plan.proposal, kind="edited",
            author_slack_id=h.alice,
        )
    )

    await h.payload(stale)
    replaced = await h.slack.wait_for_response_url(stale["response_url"], within=WAIT)
    await h.settle()
    rejected = await h.db.run(
        lambda s: repo.transition_plan(
            s, plan_id=plan.id, transition=Transition.REJECT, decided_by=h.alice
        )
    )
    late = h.slack.checkbox_action_payload(h.channel, proposal_ts, "3", ticked=False,
                                           user=h.alice)
    await h.payload(late)
    decided = await h.slack.wait_for_response_url(late["response_url"], within=WAIT)
    await h.settle()

    assert "replaced by a newer version" in replaced.body["text"]
    assert rejected and "already rejected" in decided.body["text"]
    assert (await h.plan(plan.id)).proposal["left_out"] == []


@pytest.mark.anyio
async def test_approve_with_everything_left_out_is_refused_in_a_plain_sentence(
    h: Harness,
) -> None:
    proposal_ts = await _propose(h)
    for story in ("1", "2", "3"):
        await h.tick(proposal_ts, story, ticked=False)
        await h.settle()

    _, response_url = await h.click("plan_approve", proposal_ts)

    post = await h.slack.wait_for_response_url(response_url, within=WAIT)
    assert post.body["text"] == NOTHING_PICKED
    await h.settle()
    assert (await h.plans())[0].state == "proposed"
    assert h.taiga.requests_to("POST", "/userstories*") == []
    assert h.taiga.requests_to("POST", "/milestones*") == []


def _long_plan_turn(stories: int, tasks: int) -> Json:
    """A model turn proposing `stories` stories of `tasks` tasks, with long descriptions."""
    calls = [
        tool_use(
            "taiga_create_user_story",
            {
                "subject": f"Story {i}: " + "a long subject about the export work " * 3,
                "description": f"begin-S{i} " + f"story {i} acceptance words " * 150 + f"end-S{i}",
                "tasks": [
                    {
                        "subject": f"Task {i}.{j}: " + "write the code and its tests " * 2,
                        "description": f"begin-T{i}.{j} " + "detail " * 60 + f"end-T{i}.{j}",
                    }
                    for j in range(1, tasks + 1)
                ],
            },
        )
        for i in range(1, stories + 1)
    ]
    return message(text("Planned."), *calls)


def _squeezed(value: str) -> str:
    return re.sub(r"\s+", "", value)


@pytest.mark.anyio
async def test_a_twenty_by_five_plan_is_pickable_and_fully_readable_before_approve(
    h: Harness,
) -> None:
    proposal_ts = await _propose(h, _long_plan_turn(20, 5))

    shown = h.slack.message(h.channel, proposal_ts)
    assert len(shown["blocks"]) <= 50  # and the fake Slack accepted every Block Kit limit
    options = _options(shown["blocks"])
    numbers = {str(i) for i in range(1, 21)} | {f"{i}.{j}" for i in range(1, 21)
                                                  for j in range(1, 6)}
    assert set(options) == numbers and all(ticked for ticked, _ in options.values())
    confirm = _approve_confirm(shown["blocks"])
    assert "20 stories and 100 tasks" in confirm and "View full plan" in confirm

    await h.click("plan_view", proposal_ts)
    opened = await h.slack.wait_for("views.open", within=WAIT)
    assert opened.ok
    view_id = opened.response["view"]["id"]
    pages = [h.slack.views()[0]]
    while any(e.get("action_id") == "plan_view_page:next"
              for b in pages[-1]["blocks"] for e in b.get("elements", [])):
        await h.payload(h.slack.view_action_payload(view_id, "plan_view_page:next",
                                                    user=h.alice))
        await h.settle()
        pages.append(next(v for v in h.slack.views() if v["id"] == view_id))

    assert len(pages) > 1 and all(len(p["blocks"]) <= 100 for p in pages)
    everything = _squeezed(
        " ".join(b["text"]["text"] for p in pages for b in p["blocks"] if b["type"] == "section")
    )
    proposal = (await h.plans())[0].proposal
    for story in proposal["stories"]:
        assert _squeezed(story["description"]) in everything
        for task in story["tasks"]:
            assert _squeezed(task["subject"]) in everything
            assert _squeezed(task["description"]) in everything
