"""Slack faults and what the person sees: Slack throttling (429 with Retry-After) is waited out,
and a result message Slack refuses to update is kept and shown on the next click.

Also in the catalogue, tested where the feature lives:
  chat.postMessage 429 while posting the proposal (retried, posted once)
      tests/test_slack_flow.py (rate_limit("chat.postMessage"))
  chat.update refused for the result (the approver is told privately, no internals)
      tests/test_slack_failures.py::test_a_result_slack_refuses_to_show_is_told_to_the_approver
"""

from __future__ import annotations

import pytest

from tests.peers.fake_taiga import PROJECT_ID
from tests.peers.slack_harness import WAIT, Harness, block_text, story_turn
from tests.peers.slack_setups import alice_plans_here

h = alice_plans_here
MINUTES = "Ship the CSV export."
TURN = story_turn(("Export plans as CSV", ["Write the CSV writer"]))


async def propose(h: Harness) -> str:
    h.anthropic.script(TURN)
    await h.command(f"plan Sprint 6\n{MINUTES}")
    return await h.proposal_ts()


@pytest.mark.anyio
async def test_slack_throttling_the_result_update_is_waited_out(h: Harness) -> None:
    proposal_ts = await propose(h)
    h.slack.rate_limit("chat.update", 1, retry_after=0)

    await h.click("plan_approve", proposal_ts)
    done = await h.wait_update(lambda p: "Sprint plan applied" in block_text(p))
    await h.settle()

    assert done["ts"] == proposal_ts
    assert [c.status for c in h.slack.calls("chat.update")].count(429) == 1
    assert len(h.taiga.requests_to("POST", "/userstories")) == 1


@pytest.mark.anyio
async def test_a_result_slack_would_not_show_is_kept_and_shown_on_the_next_click(
    h: Harness,
) -> None:
    proposal_ts = await propose(h)
    h.slack.fail_next("chat.update", "internal_error", times=20)
    _, response_url = await h.click("plan_approve", proposal_ts)
    await h.slack.wait_for_response_url(response_url, within=WAIT)
    await h.settle()
    assert (await h.plans())[0].state == "done"  # applied; only showing it failed
    h.slack.clear_failures()  # Slack works again

    _, response_url = await h.click("plan_approve", proposal_ts)  # a stale button, clicked
    shown = await h.wait_update(lambda p: p["ts"] == proposal_ts
                                and "Sprint plan applied" in block_text(p))
    told = await h.slack.wait_for_response_url(response_url, within=WAIT)
    await h.settle()

    assert "Export plans as CSV" in block_text(shown)
    assert "already approved" in told.body["text"]
    subjects = [s["subject"] for s in h.taiga.stories(PROJECT_ID)]
    assert subjects.count("Export plans as CSV") == 1
