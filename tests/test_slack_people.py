"""Owners from the minutes: a mentioned Slack user's linked Taiga account, names matched to the
project's members, questions instead of guesses, and the assignee written to Taiga."""

from __future__ import annotations

import json
from typing import Any

import pytest

from agent.proposal import Proposal
from bot.blocks.full_plan import full_plan_view
from tests.peers.fake_anthropic import message, text, tool_results, tool_use
from tests.peers.fake_taiga import ADMIN_ID, BOB_ID, PROJECT_ID
from tests.peers.slack_harness import Harness, block_text, has_button

Json = dict[str, Any]


@pytest.fixture
async def h(h: Harness) -> Harness:
    """Alice is linked and plans in the recorded project, which also has two members named Sam."""
    await h.link(h.alice, "alice")
    await h.set_project()
    for username, full_name in (("sam.lee", "Sam Lee"), ("sam.ortiz", "Sam Ortiz")):
        h.taiga.add_user(username, "sam12345", full_name=full_name)
        h.taiga.add_member(PROJECT_ID, username, "Back")
    return h


def story(
    subject: str, assignee: object = None, tasks: list[Json] | None = None, **extra: object
) -> Json:
    call: Json = {"subject": subject, "tasks": tasks or [], **extra}
    if assignee is not None:
        call["assignee"] = assignee
    return tool_use("taiga_create_user_story", call)


async def plan_in_thread(h: Harness, *lines: str) -> Json:
    """A thread of minutes by Alice, then `@bot plan Sprint 6` in it; the proposal's message."""
    parent = h.slack.add_message(h.channel, "Sprint 6 planning", user=h.alice)
    for line in lines:
        h.slack.add_message(h.channel, line, user=h.alice, thread_ts=parent)
    await h.event(h.slack.app_mention_event(
        h.channel, f"<@{h.slack.bot_user_id}> plan Sprint 6", user=h.alice, thread_ts=parent
    ))
    return await h.wait_update(lambda p: has_button(p, "plan_approve"))


async def stored_stories(h: Harness) -> list[Json]:
    plan = (await h.plans())[0]
    return list(plan.proposal["stories"])


@pytest.mark.anyio
async def test_a_mentioned_person_is_assigned_through_their_linked_account_with_the_due_date(
    h: Harness,
) -> None:
    # Robert's Slack names match no Taiga member; his linked account (bob) decides.
    robert = h.slack.add_user("Robert Roe", display_name="rob")
    await h.link(robert, "bob")
    h.anthropic.script(message(
        text("1 story for Sprint 6."),
        story("Export plans as CSV", "@rob", [{"subject": "Write the CSV writer",
                                               "assignee": "rob"}], due_date="2026-12-11"),
    ))

    proposal = await plan_in_thread(h, f"<@{robert}> will build the CSV export by 11 December")

    assert "→ Bob Viewer, due 11 Dec 2026" in block_text(proposal)
    (first,) = await stored_stories(h)
    assert first["assigned_to"] == BOB_ID and first["tasks"][0]["assigned_to"] == BOB_ID
    await h.click("plan_approve", str(proposal["ts"]))
    await h.wait_update(lambda p: "applied" in str(p.get("text")))
    created = next(s for s in h.taiga.stories(PROJECT_ID) if s["subject"] == "Export plans as CSV")
    task = next(t for t in h.taiga.tasks(PROJECT_ID) if t["subject"] == "Write the CSV writer")
    assert created["assigned_to"] == BOB_ID and task["assigned_to"] == BOB_ID
    assert created["due_date"] == "2026-12-11" and task["due_date"] is None
    sent = h.taiga.requests_to("POST", "/userstories*")[-1]
    assert sent.json["assigned_to"] == BOB_ID and sent.json["due_date"] == "2026-12-11"


@pytest.mark.anyio
async def test_an_ambiguous_name_is_a_question_and_stays_unassigned(h: Harness) -> None:
    h.anthropic.script(message(text("1 story."), story("Import plans from CSV", "Sam")))

    proposal = await plan_in_thread(h, "Sam will do the import.")

    shown = block_text(proposal)
    assert "Who is Sam? Sam Lee or Sam Ortiz — left unassigned." in shown
    assert "→ Sam" not in shown
    assert (await stored_stories(h))[0]["assigned_to"] is None


@pytest.mark.anyio
async def test_an_unknown_name_is_never_assigned(h: Harness) -> None:
    h.anthropic.script(message(text("1 story."), story("Fix the login timeout", "Zed")))

    proposal = await plan_in_thread(h, "Zed fixes the login timeout.")

    assert "Who is Zed? No project member has that name" in block_text(proposal)
    assert (await stored_stories(h))[0]["assigned_to"] is None
    assert (await h.plans())[0].proposal["questions"] == [
        "Who is Zed? No project member has that name — left unassigned."
    ]


@pytest.mark.anyio
async def test_a_non_member_id_from_the_model_is_refused_to_the_model(h: Harness) -> None:
    seen: list[list[Json]] = []

    def corrected(body: Json) -> Json:
        seen.append(tool_results(body))
        return message(text("1 story."), story("Export plans as CSV"))

    h.anthropic.script(
        message(text("1 story."), story("Export plans as CSV", ADMIN_ID), stop_reason="tool_use"),
        corrected,
    )

    await plan_in_thread(h, "Export plans as CSV.")

    (result,) = seen[0]
    assert result["is_error"] is True
    assert f"User {ADMIN_ID} is not a member of project" in str(result["content"])
    (only,) = await stored_stories(h)
    assert only["assigned_to"] is None
    assert len(h.anthropic.requests) == 2


@pytest.mark.anyio
async def test_the_full_plan_shows_owners_due_dates_and_questions(h: Harness) -> None:
    h.anthropic.script(message(
        text("2 stories."),
        story("Export plans as CSV", "bob", [{"subject": "Write the CSV writer",
                                              "assignee": "Sam Lee"}], due_date="2026-12-11"),
        story("Import plans", "Sam"),
    ))
    proposal = await plan_in_thread(h, "Bob exports by 11 Dec, Sam Lee writes it; Sam imports.")
    plan = (await h.plans())[0]

    view = full_plan_view(plan.id, 1, Proposal.model_validate(plan.proposal), 0)

    shown = json.dumps(view, ensure_ascii=False)
    assert "→ Bob Viewer, due 11 Dec 2026" in shown
    assert "→ Sam Lee" in shown
    assert "Who is Sam? Sam Lee or Sam Ortiz — left unassigned." in shown
    assert "Write the CSV writer → Sam Lee" in block_text(proposal)  # the task's checkbox
