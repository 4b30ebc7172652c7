"""Taiga faults, through the fake Taiga, and what the person in Slack sees. Each ends in words,
and a Retry (or a new request) finishes the plan with nothing written twice.

Also in the catalogue, tested where the feature lives:
  Taiga 5xx halfway through Approve (partial, Retry finishes it)
      tests/test_slack_error_paths.py::test_a_taiga_500_halfway_through_approve_shows_what_...
  Taiga 429 with X-Throttle-Wait-Seconds while planning ("try again in 60 seconds")
      tests/test_slack_error_paths.py::test_taiga_throttling_says_when_to_try_again
  Taiga 429 on a write during Approve ("try again in 60 s", Retry)
      tests/test_slack_error_paths.py::test_a_throttled_write_during_approve_says_when_to_retry
  A refresh token Taiga rejects before planning (DM: /taiga login; the plan fails in words)
      tests/test_slack_failures.py::test_a_dead_taiga_link_is_reported_by_direct_message
  A response lost after a write was applied (found again, not created twice)
      tests/test_executor.py (lose_next_response cases)
"""

from __future__ import annotations

import pytest

from tests.faults.hostile import INTERNALS
from tests.peers.fake_taiga import PROJECT_ID
from tests.peers.slack_harness import WAIT, Harness, block_text, has_button, story_turn
from tests.peers.slack_setups import alice_plans_here

h = alice_plans_here
MINUTES = "Ship the CSV export and the export history."
STORIES = (
    ("Export plans as CSV", ["Write the CSV writer", "Add the button"]),
    ("Show export history", ["List past exports"]),
)
SUBJECTS = [subject for subject, _ in STORIES]


async def propose(h: Harness) -> str:
    h.anthropic.script(story_turn(*STORIES))
    await h.command(f"plan Sprint 6\n{MINUTES}")
    return await h.proposal_ts()


def each_story_once(h: Harness) -> bool:
    subjects = [s["subject"] for s in h.taiga.stories(PROJECT_ID)]
    return all(subjects.count(subject) == 1 for subject in SUBJECTS)


@pytest.mark.anyio
async def test_taiga_unreachable_while_planning_is_said_in_words_before_the_model(
    h: Harness,
) -> None:
    h.taiga.stop()  # connection refused from now on

    _, form = await h.command(f"plan Sprint 6\n{MINUTES}")
    await h.settle()

    private = [str(p.body.get("text")) for p in h.slack.response_url_posts(form["response_url"])]
    told = private + [block_text(c.params) for c in h.slack.calls("chat.update")]
    assert any("Could not connect to Taiga" in t for t in told), told
    assert not any(INTERNALS.search(t) for t in told), told
    assert [t.lower().count("try again") for t in private] == [1], private
    assert h.anthropic.requests == []


@pytest.mark.anyio
async def test_taiga_unreachable_at_approve_is_said_in_words_and_nothing_is_written(
    h: Harness,
) -> None:
    proposal_ts = await propose(h)
    h.taiga.stop()

    _, response_url = await h.click("plan_approve", proposal_ts)
    await h.settle()

    told = [str(p.body.get("text")) for p in h.slack.response_url_posts(response_url)]
    told += [block_text(c.params) for c in h.slack.calls("chat.update")][-1:]
    assert any("Could not connect to Taiga" in t for t in told), told
    assert not any(INTERNALS.search(t) for t in told), told
    assert (await h.plans())[0].state in {"proposed", "partial"}


@pytest.mark.anyio
async def test_a_token_expiring_mid_apply_is_renewed_and_the_plan_finishes(h: Harness) -> None:
    proposal_ts = await propose(h)
    h.taiga.expire_tokens_after("alice", path="/userstories", nth=1)

    await h.click("plan_approve", proposal_ts)
    done = await h.wait_update(lambda p: "Sprint plan applied" in block_text(p))
    await h.settle()

    assert not has_button(done, "plan_retry")
    assert len(h.taiga.requests_to("POST", "/auth/refresh")) == 1
    assert each_story_once(h)
    assert (await h.plans())[0].state == "done"


@pytest.mark.anyio
async def test_a_refresh_token_rejected_mid_apply_stops_partial_and_asks_to_log_in_again(
    h: Harness,
) -> None:
    proposal_ts = await propose(h)
    h.taiga.expire_tokens_after("alice", path="/userstories", nth=1, refresh_too=True)

    await h.click("plan_approve", proposal_ts)
    dm = await h.slack.wait_for(
        "chat.postMessage", lambda c: c.params["channel"].startswith("D"), within=WAIT
    )
    partial = await h.wait_update(lambda p: has_button(p, "plan_retry"))
    await h.settle()

    assert "/taiga login" in dm.params["text"]
    assert not INTERNALS.search(block_text(partial))
    assert (await h.plans())[0].state == "partial"
    created = [s["subject"] for s in h.taiga.stories(PROJECT_ID) if s["subject"] in SUBJECTS]
    assert len(created) == 1  # the write answered before the tokens died (writes run at once)

    await h.link(h.alice, "alice")  # what /taiga login does
    await h.click("plan_retry", proposal_ts)
    await h.wait_update(lambda p: "Sprint plan applied" in block_text(p)
                        and not has_button(p, "plan_retry"))
    await h.settle()
    assert each_story_once(h)
