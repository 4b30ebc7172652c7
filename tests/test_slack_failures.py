"""Failures people understand: a dead Taiga link, Claude unavailable, a partly applied plan
and its Retry, and approvers without the Taiga permissions."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.peers.fake_anthropic import FakeAnthropic, overloaded
from tests.peers.fake_slack import FakeSlack
from tests.peers.fake_taiga import PROJECT_ID, FakeTaiga
from tests.peers.slack_harness import (
    WAIT,
    Harness,
    block_text,
    has_button,
    running_harness,
    story_turn,
)
from tests.peers.slack_setups import alice_plans_here

MINUTES = "Ship the CSV export."
TURN = story_turn(("Export plans as CSV", ["Write the CSV writer", "Add the button"]))


h = alice_plans_here


@pytest.mark.anyio
async def test_a_dead_taiga_link_is_reported_by_direct_message(h: Harness) -> None:
    h.taiga.expire_access_tokens("alice")
    h.taiga.expire_refresh_tokens("alice")

    await h.command(f"plan Sprint 6\n{MINUTES}")

    dm = await h.slack.wait_for(
        "chat.postMessage", lambda c: c.params["channel"].startswith("D"), within=WAIT
    )
    assert "/taiga login" in dm.params["text"]
    failed = await h.wait_update(lambda p: "expired" in block_text(p))
    assert "Traceback" not in block_text(failed)
    await h.settle()
    assert (await h.plans())[0].state == "failed"


@pytest.mark.anyio
async def test_claude_unavailable_says_try_again_later(h: Harness) -> None:
    h.anthropic.script(*[overloaded() for _ in range(8)])

    await h.command(f"plan Sprint 6\n{MINUTES}")

    failed = await h.wait_update(lambda p: "Claude is not available" in block_text(p))
    assert "try again" in block_text(failed)
    assert "overloaded_error" not in block_text(failed)


@pytest.mark.anyio
async def test_retry_finishes_only_what_is_missing(h: Harness) -> None:
    h.anthropic.script(TURN)
    await h.command(f"plan Sprint 6\n{MINUTES}")
    proposal_ts = await h.proposal_ts()
    h.taiga.fail_next(400, method="POST", path="/tasks", times=1)

    await h.click("plan_approve", proposal_ts)
    partial = await h.wait_update(lambda p: has_button(p, "plan_retry"))
    assert "not created" in block_text(partial) or "missing" in block_text(partial).lower()
    await h.settle()
    await h.click("plan_retry", proposal_ts)
    done = await h.wait_update(lambda p: "applied" in str(p.get("text")) and
                               not has_button(p, "plan_retry"))
    await h.settle()

    assert "Sprint plan applied" in block_text(done)
    assert len(h.taiga.requests_to("POST", "/userstories")) == 1
    subjects = [t["subject"] for t in h.taiga.tasks(PROJECT_ID)]
    assert subjects.count("Write the CSV writer") == subjects.count("Add the button") == 1


@pytest.mark.anyio
async def test_writers_mode_checks_the_clickers_own_taiga_permissions(
    tmp_path: Path, fake_slack: FakeSlack, fake_taiga: FakeTaiga, fake_anthropic: FakeAnthropic
) -> None:
    async with running_harness(
        tmp_path, fake_slack, fake_taiga, fake_anthropic, plan_approvers="writers"
    ) as h:
        await h.link(h.alice, "alice")
        await h.link(h.bob, "bob")  # a Viewer in Taiga: no add_us / add_task
        await h.set_project()
        h.anthropic.script(TURN)
        await h.command(f"plan Sprint 6\n{MINUTES}")
        proposal_ts = await h.proposal_ts()

        _, response_url = await h.click("plan_approve", proposal_ts, user=h.bob)

        post = await h.slack.wait_for_response_url(response_url, within=WAIT)
        assert "add_us" in post.body["text"] and "add_task" in post.body["text"]
        await h.settle()
        assert h.taiga.requests_to("POST", "/userstories") == []
        assert (await h.plans())[0].state == "proposed"


@pytest.mark.anyio
async def test_a_result_slack_refuses_to_show_is_told_to_the_approver(h: Harness) -> None:
    h.anthropic.script(TURN)
    await h.command(f"plan Sprint 6\n{MINUTES}")
    proposal_ts = await h.proposal_ts()
    h.slack.fail_next("chat.update", "internal_error", times=20)

    _, response_url = await h.click("plan_approve", proposal_ts)
    told = await h.slack.wait_for_response_url(response_url, within=WAIT)

    assert "Something went wrong" in told.body["text"]
    assert "internal_error" not in told.body["text"]
