"""Edit as a new version, end to end: signed Slack requests, the fake Slack (Block Kit limits),
fake Anthropic and fake Taiga on loopback."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent.proposal import Proposal
from bot.blocks.edit import EditMetadata, edit_form, edit_view
from bot.services.edited import edited_proposal
from bot.services.versions import SOMEONE_ELSE_CHANGED_IT
from storage import repositories as repo
from tests.peers.fake_anthropic import FakeAnthropic
from tests.peers.fake_slack import MAX_VIEW_BLOCKS, FakeSlack, validate_blocks
from tests.peers.fake_taiga import PROJECT_ID, FakeTaiga
from tests.peers.slack_harness import WAIT, Harness, block_text, has_button, running_harness
from tests.test_slack_flow import linked, propose

Json = dict[str, Any]


@pytest.fixture
async def writers(
    tmp_path: Path, fake_slack: FakeSlack, fake_taiga: FakeTaiga, fake_anthropic: FakeAnthropic
) -> AsyncIterator[Harness]:
    """A harness where anyone holding the write permissions may approve (and so edit)."""
    async with running_harness(
        tmp_path, fake_slack, fake_taiga, fake_anthropic, plan_approvers="writers"
    ) as harness:
        yield harness


async def open_editor(h: Harness, message_ts: str, *, user: str | None = None) -> Json:
    """Click Edit on a proposal message; the modal Slack opened."""
    opened_before = h.slack.call_count("views.open")
    response, _ = await h.click("plan_edit", message_ts, user=user)
    assert response.status_code == 200
    opened = await h.slack.wait_for("views.open", count=opened_before + 1, within=WAIT)
    assert opened.ok, opened.response
    return dict(opened.response["view"])


async def submit(h: Harness, view: Json, values: dict[str, str], *, user: str) -> httpx.Response:
    payload = h.slack.view_submission_payload(
        view["id"], user=user, values={block: {block: text} for block, text in values.items()}
    )
    return await h.payload(payload)


def initial_values(view: Json) -> dict[str, str]:
    return {
        block["block_id"]: block["element"].get("initial_value", "")
        for block in view["blocks"] if block["type"] == "input"
    }


async def new_version_ts(h: Harness, count: int = 1) -> str:
    """The ts of the `count`-th proposal posted as a new message (a new version)."""
    posted = await h.slack.wait_for(
        "chat.postMessage", lambda c: c.ok and has_button(c.params, "plan_approve"),
        count=count, within=WAIT,
    )
    return str(posted.response["ts"])


def error_of(response: httpx.Response) -> dict[str, str]:
    answer = response.json()
    assert answer["response_action"] == "errors"
    return dict(answer["errors"])


# --------------------------------------------------------------------------- the whole flow


@pytest.mark.anyio
async def test_an_edit_with_a_field_error_then_a_valid_one_makes_version_2_and_only_it_applies(
    h: Harness,
) -> None:
    await linked(h)
    first_ts = await propose(h)
    stale_approve = h.slack.block_action_payload(h.channel, first_ts, "plan_approve", user=h.alice)
    view = await open_editor(h, first_ts)
    shown = initial_values(view)
    assert shown["sprint"] == "Sprint 6"
    assert shown["subject:new-story-1"] == "Export plans as CSV"
    assert shown["tasks:new-story-1"] == "Write the CSV writer\nAdd the download button"

    refused = await submit(h, view, {"subject:new-story-1": "  ", "subject:new-story-2": "x" * 501},
                           user=h.alice)

    errors = error_of(refused)
    assert "needs a subject" in errors["subject:new-story-1"]
    assert "at most 500" in errors["subject:new-story-2"]
    assert (await h.plans())[0].proposal_version == 1

    accepted = await submit(h, view, {
        "subject:new-story-1": "Export plans as CSV files",
        "tasks:new-story-1": "Add the download button\n"
                             "Write the CSV writer — RFC 4180 quoting\nAdd a size limit",
    }, user=h.alice)

    assert accepted.status_code == 200 and not accepted.content
    second_ts = await new_version_ts(h)
    replaced = await h.wait_update(lambda p: p["ts"] == first_ts and "replaced" in block_text(p))
    assert not has_button(replaced, "plan_approve")
    plan = (await h.plans())[0]
    assert (plan.proposal_version, plan.slack_message_ts) == (2, second_ts)
    story = Proposal.model_validate(plan.proposal).stories[0]
    assert [(t.key, t.subject, t.description) for t in story.tasks] == [
        ("new-story-1/task-1", "Add the download button", ""),
        ("new-story-1/task-2", "Write the CSV writer", "RFC 4180 quoting"),
        ("new-story-1/task-3", "Add a size limit", ""),
    ]
    version_2 = h.slack.message(h.channel, second_ts)
    assert "version 2" in block_text(version_2) and "CSV files" in block_text(version_2)

    await h.payload(stale_approve)
    told = await h.slack.wait_for_response_url(stale_approve["response_url"], within=WAIT)
    assert "replaced by a newer version" in told.body["text"]
    await h.settle()
    assert h.taiga.requests_to("POST", "/userstories*") == []
    assert (await h.plan(plan.id)).state == "proposed"

    await asyncio.gather(h.click("plan_approve", second_ts), h.click("plan_approve", second_ts))
    result = await h.wait_update(lambda p: "applied" in str(p.get("text")))
    await h.settle()

    assert len(h.taiga.requests_to("POST", "/userstories")) == 2
    assert len(h.taiga.requests_to("POST", "/tasks")) == 4
    assert "Export plans as CSV files" in {s["subject"] for s in h.taiga.stories(PROJECT_ID)}
    described = {t["subject"]: t["description"] for t in h.taiga.tasks(PROJECT_ID)}
    assert described["Write the CSV writer"] == "RFC 4180 quoting"
    shown_result = block_text(result)
    assert f"Approved version 2 by <@{h.alice}>" in shown_result
    assert f"1 drafted by <@{h.alice}> · 2 edited by <@{h.alice}>" in shown_result


# --------------------------------------------------------------------------- two editors


@pytest.mark.anyio
async def test_two_people_editing_the_same_version_one_wins_and_the_other_is_told(
    writers: Harness,
) -> None:
    h = writers
    await linked(h)
    await h.link(h.bob, "alice")
    first_ts = await propose(h)
    alice_view = await open_editor(h, first_ts)
    bob_view = await open_editor(h, first_ts, user=h.bob)

    alice, bob = await asyncio.gather(
        submit(h, alice_view, {"subject:new-story-1": "Alice's subject"}, user=h.alice),
        submit(h, bob_view, {"subject:new-story-1": "Bob's subject"}, user=h.bob),
    )
    await h.settle()

    plan = (await h.plans())[0]
    revisions = await h.db.run(lambda s: repo.revisions_of(s, plan.id))
    assert [r.number for r in revisions] == [1, 2]
    winner = revisions[1].author_slack_id
    loser, loser_answer = (h.bob, bob) if winner == h.alice else (h.alice, alice)
    told_in_modal = bool(loser_answer.content) and SOMEONE_ELSE_CHANGED_IT in json.dumps(
        loser_answer.json()
    )
    told_privately = any(
        SOMEONE_ELSE_CHANGED_IT in str(e.get("text")) for e in h.slack.ephemerals(user=loser)
    )
    assert told_in_modal or told_privately
    story = Proposal.model_validate(plan.proposal).stories[0]
    assert story.subject == ("Alice's subject" if winner == h.alice else "Bob's subject")

    late = await submit(h, bob_view, {"subject:new-story-1": "Too late"}, user=h.bob)

    assert error_of(late)["sprint"] == SOMEONE_ELSE_CHANGED_IT
    assert (await h.plans())[0].proposal_version == 2


@pytest.mark.anyio
async def test_someone_who_may_not_approve_cannot_edit(h: Harness) -> None:
    await linked(h)
    await h.link(h.bob, "alice")
    first_ts = await propose(h)

    _, response_url = await h.click("plan_edit", first_ts, user=h.bob)

    post = await h.slack.wait_for_response_url(response_url, within=WAIT)
    assert post.body["text"] == f"Only <@{h.alice}> can approve this."
    await h.settle()
    assert h.slack.call_count("views.open") == 0


# --------------------------------------------------------------------------- the sprint


@pytest.mark.anyio
async def test_the_sprint_must_be_one_of_the_projects_and_another_one_can_be_chosen(
    h: Harness,
) -> None:
    await linked(h)
    first_ts = await propose(h)
    view = await open_editor(h, first_ts)
    h.taiga.clear_requests()

    unknown = await submit(h, view, {"sprint": "Sprint 99"}, user=h.alice)

    assert "not a sprint" in error_of(unknown)["sprint"]
    assert "Sprint 5" in error_of(unknown)["sprint"]

    moved = await submit(h, view, {"sprint": "sprint 5"}, user=h.alice)

    assert moved.status_code == 200 and not moved.content
    await new_version_ts(h)
    await h.settle()
    plan = (await h.plans())[0]
    proposal = Proposal.model_validate(plan.proposal)
    assert plan.target_sprint == proposal.target_sprint == "Sprint 5"
    assert proposal.milestone is not None
    assert (proposal.milestone.existing_id, proposal.milestone.name) == (1, "Sprint 5")
    assert h.taiga.requests_to("GET", "*") == []  # the submit needed no Taiga call


# --------------------------------------------------------------------------- the form itself


def _long_plan() -> Proposal:
    stories = [
        {"key": f"new-story-{i}", "subject": f"Story {i}", "description": "d" * 400,
         "tasks": [{"key": f"new-story-{i}/task-{j}", "subject": f"Task {i}.{j}",
                    "description": f"Line one\nline two of {j}"} for j in range(1, 6)]}
        for i in range(1, 21)
    ]
    stories[0]["description"] = "x" * 3500
    return Proposal.model_validate({
        "project": {"id": 7, "slug": "acme", "name": "Acme"}, "target_sprint": "Sprint 7",
        "milestone": {"name": "Sprint 7", "to_create": True}, "stories": stories,
        "left_out": ["new-story-2/task-5"],
    })


def test_a_20_by_5_plan_fits_the_modal_and_says_what_stays_as_it_is() -> None:
    proposal = _long_plan()

    view = edit_view(proposal, edit_form(proposal), EditMetadata("p1", 1),
                     sprint_names=["Sprint 7 (new)"])

    assert validate_blocks(view["blocks"], max_blocks=MAX_VIEW_BLOCKS) == []
    text = json.dumps(view["blocks"])
    assert "Story 1's description is over 3000 characters" in text
    assert '"description:new-story-1"' not in text and '"description:new-story-2"' in text
    assert "Task 20.5" in text


def test_a_hidden_description_is_kept_and_a_left_out_task_follows_its_line() -> None:
    proposal = _long_plan()
    form = edit_form(proposal)
    lines = "Task 2.5\nTask 2.1 — now one line\nBrand new"
    view = {"state": {"values": {"tasks:new-story-2": {"tasks:new-story-2": {"value": lines}}}}}

    edited = edited_proposal(proposal, form, view, ())

    assert isinstance(edited, Proposal)
    tasks = edited.stories[1].tasks
    assert [(t.key, t.subject, t.description) for t in tasks] == [
        ("new-story-2/task-1", "Task 2.5", "Line one\nline two of 5"),
        ("new-story-2/task-2", "Task 2.1", "now one line"),
        ("new-story-2/task-3", "Brand new", ""),
    ]
    assert edited.left_out == ["new-story-2/task-1"]
    assert edited.stories[0].description == "x" * 3500
