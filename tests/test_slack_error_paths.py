"""Error paths through signed /slack/events requests: Taiga refusing the project, a missing
project, Taiga throttling, an unlinked user's mention, and a Taiga 500 halfway through Approve.
Every message the bot sent in these tests is a plain sentence, never a stack trace."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator

import pytest

from storage import repositories as repo
from tests.peers.fake_taiga import OTHER_PROJECT_ID, OTHER_PROJECT_SLUG, PROJECT_ID
from tests.peers.slack_harness import (
    WAIT,
    Harness,
    block_text,
    has_button,
    story_turn,
)

MINUTES = "Ship the CSV export and the export history."
TURN = story_turn(
    ("Export plans as CSV", ["Write the CSV writer", "Add the button"]),
    ("Show export history", ["List past exports"]),
)
# What a leaked exception looks like: a traceback, or one of the class names behind our errors.
INTERNALS = re.compile(
    r"Traceback|\b\w+(Error|Exception)\b|\b(Forbidden|NotFound|RateLimited|Unavailable|"
    r"Unauthorized|ResponseLost|ValidationFailed|LinkExpired)\b"
)
SENT = ("chat.postMessage", "chat.update", "chat.postEphemeral")


@pytest.fixture
async def h(h: Harness) -> AsyncIterator[Harness]:
    """Every test here ends by checking that nothing Slack received shows our internals."""
    yield h
    await h.settle()
    assert_no_internals(h)


def assert_no_internals(h: Harness) -> None:
    sent = [json.dumps(c.params, ensure_ascii=False) for c in h.slack.calls() if c.method in SENT]
    sent += [json.dumps(p.body, ensure_ascii=False) for p in h.slack.response_url_posts()]
    assert sent, "the bot said nothing at all"
    leaks = [m.group(0) for text in sent for m in [INTERNALS.search(text)] if m]
    assert leaks == []


async def use_project(h: Harness, project_id: int, slug: str, name: str) -> None:
    await h.link(h.alice, "alice")
    await h.db.run(
        lambda s: repo.set_channel_project(
            s, team_id=h.slack.team_id, channel_id=h.channel, project_id=project_id,
            project_slug=slug, project_name=name, set_by=h.alice,
        )
    )


def private_texts(h: Harness, form: dict[str, str]) -> list[str]:
    """What only the requester saw: response_url answers and ephemerals."""
    posts = [str(p.body.get("text")) for p in h.slack.response_url_posts(form["response_url"])]
    return posts + [str(e.get("text")) for e in h.slack.ephemerals(user=h.alice)]


@pytest.mark.anyio
async def test_a_project_taiga_refuses_is_explained_privately_with_the_project_and_permission(
    h: Harness,
) -> None:
    await use_project(h, OTHER_PROJECT_ID, OTHER_PROJECT_SLUG, "Admin Private")

    _, form = await h.command(f"plan Sprint 6\n{MINUTES}")
    await h.settle()

    texts = private_texts(h, form)
    assert any("Admin Private" in t and "view_project" in t for t in texts), texts
    assert h.anthropic.requests == []
    assert (await h.plans())[0].state == "failed"


@pytest.mark.anyio
async def test_a_project_that_no_longer_exists_is_explained_privately(h: Harness) -> None:
    await use_project(h, 9999, "gone-project", "Gone Project")

    _, form = await h.command(f"plan Sprint 6\n{MINUTES}")
    await h.settle()

    texts = private_texts(h, form)
    assert any("Gone Project" in t and "could not find" in t for t in texts), texts
    assert h.anthropic.requests == []


@pytest.mark.anyio
async def test_taiga_throttling_says_when_to_try_again(h: Harness) -> None:
    await use_project(h, PROJECT_ID, "alice-peer-client-test", "Peer client test")
    h.taiga.throttle_next(20, wait_seconds=60, method="GET")

    _, form = await h.command(f"plan Sprint 6\n{MINUTES}")
    await h.settle()

    texts = private_texts(h, form)
    assert any("try again in 60 seconds" in t for t in texts), texts
    assert h.anthropic.requests == []


@pytest.mark.anyio
async def test_a_mention_by_an_unlinked_user_gets_private_login_guidance(h: Harness) -> None:
    await h.set_project()
    envelope = h.slack.app_mention_event(
        h.channel, f"<@{h.slack.bot_user_id}> plan Sprint 6\n{MINUTES}", user=h.bob
    )

    await h.event(envelope)

    ephemeral = await h.slack.wait_for("chat.postEphemeral", within=WAIT)
    assert ephemeral.params["user"] == h.bob and "/taiga login" in ephemeral.params["text"]
    await h.settle()
    assert h.anthropic.requests == [] and await h.plans() == []
    assert h.slack.call_count("chat.postMessage") == 0


@pytest.mark.anyio
async def test_a_taiga_500_halfway_through_approve_shows_what_exists_and_retry_finishes_it(
    h: Harness,
) -> None:
    await h.link(h.alice, "alice")
    await h.set_project()
    h.anthropic.script(TURN)
    await h.command(f"plan Sprint 6\n{MINUTES}")
    proposal_ts = await h.proposal_ts()
    h.taiga.fail_next(500, method="POST", path="/userstories", nth=2)

    await h.click("plan_approve", proposal_ts)
    partial = await h.wait_update(lambda p: has_button(p, "plan_retry"))
    await h.settle()

    assert len(h.taiga.requests_to("POST", "/userstories")) == 2
    stories = {s["subject"]: s for s in h.taiga.stories(PROJECT_ID)}
    done_subject = next(s for s in ("Export plans as CSV", "Show export history") if s in stories)
    missing_subject = ({"Export plans as CSV", "Show export history"} - {done_subject}).pop()
    assert f"/us/{stories[done_subject]['ref']}" in block_text(partial)
    assert missing_subject in block_text(partial)

    await h.click("plan_retry", proposal_ts)
    done = await h.wait_update(lambda p: "applied" in str(p.get("text"))
                               and not has_button(p, "plan_retry"))
    await h.settle()

    assert "Sprint plan applied" in block_text(done)
    subjects = [s["subject"] for s in h.taiga.stories(PROJECT_ID)]
    assert subjects.count("Export plans as CSV") == subjects.count("Show export history") == 1
    tasks = sorted(
        t["subject"] for t in h.taiga.tasks(PROJECT_ID)
        if t["subject"] in {"Write the CSV writer", "Add the button", "List past exports"}
    )
    assert tasks == ["Add the button", "List past exports", "Write the CSV writer"]
    assert len(h.taiga.requests_to("POST", "/userstories")) == 3  # one retried, none repeated
    assert (await h.plans())[0].state == "done"


@pytest.mark.anyio
async def test_a_throttled_write_during_approve_says_when_to_retry(h: Harness) -> None:
    await h.link(h.alice, "alice")
    await h.set_project()
    h.anthropic.script(TURN)
    await h.command(f"plan Sprint 6\n{MINUTES}")
    proposal_ts = await h.proposal_ts()
    h.taiga.throttle_next(1, wait_seconds=60, method="POST", path="/userstories")

    await h.click("plan_approve", proposal_ts)
    partial = await h.wait_update(lambda p: has_button(p, "plan_retry"))

    assert "try again in 60 s" in block_text(partial)
    assert "Taiga did not answer properly (" not in block_text(partial)
