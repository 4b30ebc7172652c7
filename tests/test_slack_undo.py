"""Undo on an applied plan's message, end to end: only the approver, once under a double click,
what was removed and kept shown in the plan's message, and an undo a restart cut short finished
by the recovery sweep."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import anyio
import httpx
import pytest
from sqlmodel import Session

from bot.services.undoing import UNDOING_NOW
from storage import repositories as repo
from storage.plan_states import Transition
from tests.peers.fake_taiga import PROJECT_ID
from tests.peers.slack_harness import (
    WAIT,
    Harness,
    block_text,
    has_button,
    story_turn,
)
from tests.peers.slack_setups import alice_plans_here

MINUTES = "We agreed to ship the CSV export.\nAlice: add the download button."
STORIES = (
    ("Export plans as CSV", ["Write the CSV writer", "Add the download button"]),
    ("Show export history", ["List past exports"]),
)
SUBJECTS = {"Export plans as CSV", "Show export history"}
TASKS = {"Write the CSV writer", "Add the download button", "List past exports"}


h = alice_plans_here


async def applied(h: Harness) -> tuple[str, str]:
    """Alice's plan of 2 stories and 3 tasks, approved and applied: its id and message ts."""
    h.anthropic.script(story_turn(*STORIES))
    await h.command(f"plan Sprint 6\n{MINUTES}")
    ts = await h.proposal_ts()
    await h.click("plan_approve", ts)
    result = await h.wait_update(lambda p: "applied" in str(p.get("text")))
    assert has_button(result, "plan_undo") and not has_button(result, "plan_retry")
    await h.settle()
    return (await h.plans())[0].id, ts


def subjects(h: Harness) -> set[str]:
    return {s["subject"] for s in h.taiga.stories(PROJECT_ID)} | {
        t["subject"] for t in h.taiga.tasks(PROJECT_ID)
    }


@pytest.mark.anyio
async def test_undo_removes_the_plan_and_keeps_a_story_changed_since(h: Harness) -> None:
    plan_id, ts = await applied(h)
    history = next(s for s in h.taiga.stories(PROJECT_ID) if s["subject"] == "Show export history")
    h.taiga.edit("story", history["id"], description="Bob added acceptance criteria")

    await h.click("plan_undo", ts)

    shown = block_text(await h.wait_update(lambda p: "undone" in str(p.get("text"))))
    assert "Removed (4)" in shown and "Kept (1)" in shown
    assert f"#{history['ref']} Show export history: changed in Taiga since" in shown
    assert f"Undone by <@{h.alice}>" in shown
    left = subjects(h)
    assert "Show export history" in left and not (TASKS | {"Export plans as CSV"}) & left
    await h.settle()
    assert (await h.plan(plan_id)).state == "undone"


@pytest.mark.anyio
async def test_only_the_approver_can_undo(h: Harness) -> None:
    await h.link(h.bob, "alice")
    plan_id, ts = await applied(h)

    _, response_url = await h.click("plan_undo", ts, user=h.bob)

    post = await h.slack.wait_for_response_url(response_url, within=WAIT)
    assert post.body["text"] == f"Only <@{h.alice}>, who approved it, can undo this plan."
    await h.settle()
    assert h.taiga.requests_to("DELETE", "*") == []
    assert (await h.plan(plan_id)).state == "done"


@pytest.mark.anyio
async def test_undo_without_the_delete_permission_is_refused(h: Harness) -> None:
    plan_id, ts = await applied(h)
    h.taiga.add_user("dana", "dana1234")
    role = h.taiga.add_role(PROJECT_ID, "Adder", ("view_project", "view_us", "view_tasks"))
    h.taiga.add_member(PROJECT_ID, "dana", role)
    await h.link(h.alice, "dana")  # Alice's link now signs in as someone who may not delete

    _, response_url = await h.click("plan_undo", ts)

    post = await h.slack.wait_for_response_url(response_url, within=WAIT)
    assert "You cannot undo this plan" in post.body["text"] and "delete_task" in post.body["text"]
    await h.settle()
    assert h.taiga.requests_to("DELETE", "*") == []
    assert SUBJECTS | TASKS <= subjects(h)
    assert (await h.plan(plan_id)).state == "done"


@pytest.mark.anyio
async def test_a_double_click_on_undo_deletes_each_item_once(h: Harness) -> None:
    plan_id, ts = await applied(h)

    first, second = await asyncio.gather(h.click("plan_undo", ts), h.click("plan_undo", ts))
    await h.wait_update(lambda p: "undone" in str(p.get("text")))
    await h.settle()

    deletes = [r.path for r in h.taiga.requests if r.method == "DELETE"]
    assert len(deletes) == len(set(deletes)) == 5
    assert not (SUBJECTS | TASKS) & subjects(h)
    # The click that lost the race is told the plan is being undone (or, if it came after the
    # end, is shown the same report); no click is told of a failure.
    posts = [h.slack.response_url_posts(url) for url in (first[1], second[1])]
    told = [p.body.get("text") for url_posts in posts for p in url_posts]
    assert set(told) <= {UNDOING_NOW}
    assert (await h.plan(plan_id)).state == "undone"


@pytest.mark.anyio
async def test_the_sweep_finishes_an_undo_cut_short_by_a_restart(h: Harness) -> None:
    plan_id, ts = await applied(h)
    task = next(t for t in h.taiga.tasks(PROJECT_ID) if t["subject"] == "List past exports")
    entries = await h.db.run(lambda s: repo.ledger_for_plan(s, plan_id))
    key = next(k for k, e in entries.items() if e.taiga_id == task["id"] and k.startswith("task"))

    def restart_mid_undo(session: Session) -> None:
        repo.transition_plan(
            session, plan_id=plan_id, transition=Transition.START_UNDO, holder="died",
            lease_until=h.wall() + timedelta(seconds=30),
        )
        repo.claim_actions(
            session, plan_id=plan_id, action_keys=[f"undo:{key}"], now=h.wall(),
            actor=task["owner"],
        )  # fmt: skip

    await h.db.run(restart_mid_undo)
    token = h.taiga.login_tokens("alice")["auth_token"]
    async with httpx.AsyncClient() as http:  # the DELETE went through before the restart
        gone = await http.delete(
            f"{h.taiga.api_url}/tasks/{task['id']}", headers={"Authorization": f"Bearer {token}"}
        )
    assert gone.status_code == 204
    h.taiga.clear_requests()
    with anyio.fail_after(WAIT):
        assert (await h.bot.recovery.run_round()).resumed == []  # its lease has not lapsed yet
    h.wall.offset = timedelta(minutes=1)
    with anyio.fail_after(WAIT):
        report = await h.bot.recovery.run_round()

    assert report.resumed == [plan_id]
    shown = block_text(
        await h.wait_update(lambda p: p["ts"] == ts and "undone" in str(p.get("text")))
    )
    assert "Removed (5)" in shown and "Already deleted" not in shown
    assert f"/tasks/{task['id']}" not in [r.path for r in h.taiga.requests if r.method == "DELETE"]
    assert not (SUBJECTS | TASKS) & subjects(h)
    assert (await h.plan(plan_id)).state == "undone"


@pytest.mark.anyio
async def test_an_undo_that_stopped_is_finished_by_retry_undo(h: Harness) -> None:
    plan_id, ts = await applied(h)
    h.taiga.fail_next(500, method="DELETE", path="/userstories/*")

    await h.click("plan_undo", ts)

    stopped = await h.wait_update(lambda p: "partly undone" in str(p.get("text")))
    assert "Not removed yet (1)" in block_text(stopped) and has_button(stopped, "plan_undo")
    await h.settle()
    assert (await h.plan(plan_id)).state == "undo_partial"

    await h.click("plan_undo", ts)

    finished = await h.wait_update(lambda p: "Plan undone" in str(p.get("text")))
    assert "Removed (5)" in block_text(finished) and not has_button(finished, "plan_undo")
    assert not (SUBJECTS | TASKS) & subjects(h)
