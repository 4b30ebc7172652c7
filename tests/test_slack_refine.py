"""Refining a plan in its thread, and what a mention in a plan's thread means."""

from __future__ import annotations

import json

import pytest

from storage import repositories as repo
from tests.peers.fake_anthropic import overloaded
from tests.peers.fake_taiga import PROJECT_ID
from tests.peers.slack_harness import (
    WAIT,
    Harness,
    block_text,
    has_button,
    story_turn,
)
from tests.peers.slack_setups import alice_plans_here

MINUTES = "Ship the CSV export. Dana: we need QA for the export too."
DRAFT = story_turn(
    ("Export plans as CSV", ["Write the CSV writer"]),
    ("Download the CSV export", ["Add the download button"]),
)
MERGED = story_turn(
    ("Export and download plans as CSV", ["Write the CSV writer", "Add the download button"]),
    summary="1 story with 2 tasks for Sprint 6.",
)
INSTRUCTION = "merge the two export stories"


h = alice_plans_here


async def planned(h: Harness) -> tuple[str, str]:
    """Alice plans Sprint 6 by a mention with the minutes: (thread ts, version 1's ts)."""
    h.anthropic.script(DRAFT)
    envelope = h.slack.app_mention_event(
        h.channel, f"<@{h.slack.bot_user_id}> plan Sprint 6\n{MINUTES}", user=h.alice
    )
    await h.event(envelope)
    ts = await h.proposal_ts()
    await h.settle()
    return envelope["event"]["ts"], ts


async def mention_in(h: Harness, thread: str, text: str, *, user: str | None = None) -> None:
    await h.event(h.slack.app_mention_event(
        h.channel, f"<@{h.slack.bot_user_id}> {text}", user=user or h.alice, thread_ts=thread
    ))


def new_version_posts(h: Harness) -> list[dict]:
    return [
        c.params for c in h.slack.calls("chat.postMessage")
        if c.ok and has_button(c.params, "plan_approve")
    ]


@pytest.mark.anyio
async def test_a_refine_reply_posts_version_2_built_from_version_1_and_the_instruction(
    h: Harness,
) -> None:
    thread, v1_ts = await planned(h)
    h.anthropic.script(MERGED)

    await mention_in(h, thread, INSTRUCTION)
    await h.settle()

    first_message = h.anthropic.requests[1].body["messages"][0]["content"]
    current = first_message.split("<current_plan>")[1].split("</current_plan>")[0]
    assert "Export plans as CSV" in current and "Download the CSV export" in current
    assert f"<instruction>\n{INSTRUCTION}\n</instruction>" in first_message
    assert "we need QA for the export" in first_message  # the minutes it was drafted from
    [v2] = new_version_posts(h)
    assert v2["thread_ts"] == thread
    assert "version 2" in block_text(v2) and "Export and download plans as CSV" in block_text(v2)
    assert "Version 1 was replaced by version 2" in block_text(h.slack.message(h.channel, v1_ts))
    plan = (await h.plans())[0]
    assert plan.proposal_version == 2 and plan.state == "proposed"
    history = await h.db.run(lambda s: repo.revisions_of(s, plan.id))
    assert [(r.number, r.kind, r.author_slack_id, r.note) for r in history[1:]] == [
        (2, "refined", h.alice, INSTRUCTION)
    ]
    status = [
        c.params for c in h.slack.calls("chat.update")
        if "Revising version 1" in block_text(c.params)
    ]
    assert "Version 2 is below." in block_text(status[-1])

    await h.click("plan_approve", str(h.slack.message(h.channel, plan.slack_message_ts)["ts"]))
    await h.wait_update(lambda p: "applied" in str(p.get("text")))
    await h.settle()
    subjects = {s["subject"] for s in h.taiga.stories(PROJECT_ID)}
    assert "Export and download plans as CSV" in subjects
    assert "Download the CSV export" not in subjects


@pytest.mark.anyio
async def test_a_refine_by_someone_who_may_not_approve_is_refused(h: Harness) -> None:
    thread, _ = await planned(h)
    await h.link(h.bob, "alice")

    await mention_in(h, thread, INSTRUCTION, user=h.bob)
    told = await h.slack.wait_for("chat.postEphemeral", within=WAIT)
    await h.settle()

    assert told.params["user"] == h.bob
    assert told.params["text"] == f"Only <@{h.alice}> can approve this."
    assert len(h.anthropic.requests) == 1
    assert (await h.plans())[0].proposal_version == 1
    assert new_version_posts(h) == []


@pytest.mark.anyio
async def test_thanks_in_the_thread_of_a_plan_made_from_asked_minutes_makes_no_new_plan(
    h: Harness,
) -> None:
    h.anthropic.script(DRAFT)
    await h.command("plan Sprint 6")
    ask = await h.slack.wait_for("chat.postMessage", within=WAIT)
    thread = ask.response["ts"]
    await mention_in(h, thread, MINUTES)
    await h.proposal_ts()
    await h.settle()

    await mention_in(h, thread, "thanks, looks good!")
    told = await h.slack.wait_for("chat.postEphemeral", within=WAIT)
    await h.settle()

    assert "To change the plan in this thread (version 1)" in told.params["text"]
    assert told.params["thread_ts"] == thread
    assert len(await h.plans()) == 1
    assert len(h.anthropic.requests) == 1


@pytest.mark.anyio
async def test_a_revision_that_changes_nothing_says_so_and_makes_no_version(h: Harness) -> None:
    thread, _ = await planned(h)
    h.anthropic.script(story_turn(
        ("Export plans as CSV", ["Write the CSV writer"]),
        ("Download the CSV export", ["Add the download button"]),
        summary="There is no analytics story to drop.",
    ))

    await mention_in(h, thread, "drop the analytics story")
    await h.settle()

    status = [
        c.params for c in h.slack.calls("chat.update")
        if "Revising version 1" in block_text(c.params)
    ]
    assert "No change" in block_text(status[-1])
    assert "no analytics story to drop" in block_text(status[-1])
    assert new_version_posts(h) == []
    assert (await h.plans())[0].proposal_version == 1


@pytest.mark.anyio
async def test_a_finished_plans_thread_needs_an_explicit_plan_command(h: Harness) -> None:
    thread, v1_ts = await planned(h)
    await h.click("plan_reject", v1_ts)
    await h.wait_update(lambda p: "Rejected by" in block_text(p))
    await h.settle()

    await mention_in(h, thread, "drop the analytics story")
    told = await h.slack.wait_for("chat.postEphemeral", within=WAIT)
    await h.settle()
    assert "was rejected" in told.params["text"] and "plan <sprint name>" in told.params["text"]
    assert len(h.anthropic.requests) == 1

    h.anthropic.script(DRAFT)
    await mention_in(h, thread, "plan Sprint 7")
    await h.wait_update(lambda p: has_button(p, "plan_approve"), count=2)
    await h.settle()
    assert sorted(p.target_sprint for p in await h.plans()) == ["Sprint 6", "Sprint 7"]


@pytest.mark.anyio
async def test_a_refinement_claude_cannot_make_says_so_in_a_plain_sentence(h: Harness) -> None:
    thread, _ = await planned(h)
    h.anthropic.script(*[overloaded() for _ in range(8)])

    await mention_in(h, thread, INSTRUCTION)
    told = await h.slack.wait_for("chat.postEphemeral", within=WAIT)
    await h.settle()

    assert told.params["text"].startswith("I could not revise the plan:")
    assert "Claude is not available" in told.params["text"]
    assert "Version 1 is unchanged." in told.params["text"]
    assert "Traceback" not in json.dumps([c.params for c in h.slack.calls()])
    assert (await h.plans())[0].proposal_version == 1

