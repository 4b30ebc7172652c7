"""The Slack flows end to end: signed requests to /slack/events, real loopback peers."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from urllib.parse import urlencode

import anyio
import pytest
from sqlmodel import select

from storage import repositories as repo
from storage.models import TaigaLink
from tests.peers.fake_anthropic import FakeAnthropic
from tests.peers.fake_slack import FakeSlack
from tests.peers.fake_taiga import PROJECT_ID, FakeTaiga
from tests.peers.slack_harness import (
    WAIT,
    Gate,
    Harness,
    block_text,
    has_button,
    running_harness,
    story_turn,
)

MINUTES = "We agreed to ship the CSV export.\nAlice: add the download button."
STORIES = (
    ("Export plans as CSV", ["Write the CSV writer", "Add the download button"]),
    ("Show export history", ["List past exports"]),
)




async def linked(h: Harness) -> None:
    await h.link(h.alice, "alice")
    await h.set_project()


async def propose(h: Harness, *, stories: tuple = STORIES, sprint: str = "Sprint 6") -> str:
    """`/taiga plan` by Alice; returns the ts of the proposal message."""
    h.anthropic.script(story_turn(*stories))
    response, _ = await h.command(f"plan {sprint}\n{MINUTES}")
    assert response.status_code == 200
    return await h.proposal_ts()


# --------------------------------------------------------------------------- login


@pytest.mark.anyio
async def test_login_modal_with_the_right_password_stores_only_encrypted_tokens(
    h: Harness,
) -> None:
    response, form = await h.command("login")
    assert response.status_code == 200
    opened = await h.slack.wait_for("views.open", within=WAIT)
    assert opened.ok and opened.params["trigger_id"] == form["trigger_id"]
    view_id = opened.response["view"]["id"]

    payload = h.slack.view_submission_payload(
        view_id, user=h.alice,
        values={"username": {"username": "alice"}, "password": {"password": "alice123"}},
    )
    response = await h.payload(payload)

    assert response.status_code == 200
    answer = response.json()
    assert answer["response_action"] == "update"
    assert "alice" in json.dumps(answer["view"])
    await h.settle()  # the tokens are stored after the answer
    link = await h.db.run(
        lambda s: repo.get_link(
            s, cipher=h.bot.services.cipher, team_id=h.slack.team_id, user_id=h.alice
        )
    )
    assert link is not None and link.taiga_username == "alice"
    row = await h.db.run(lambda s: s.exec(select(TaigaLink)).one().model_dump())
    stored = json.dumps(row, default=str)
    assert link.auth_token not in stored and "alice123" not in stored
    assert h.bot.services.cipher.decrypt(row["auth_token_enc"]) == link.auth_token


@pytest.mark.anyio
async def test_login_modal_with_a_wrong_password_shows_the_error_in_the_modal(
    h: Harness,
) -> None:
    await h.command("login")
    opened = await h.slack.wait_for("views.open", within=WAIT)
    payload = h.slack.view_submission_payload(
        opened.response["view"]["id"], user=h.alice,
        values={"username": {"username": "alice"}, "password": {"password": "wrong"}},
    )
    response = await h.payload(payload)

    answer = response.json()
    assert answer["response_action"] == "errors"
    assert "password" in answer["errors"]
    assert await h.db.run(
        lambda s: repo.get_link(
            s, cipher=h.bot.services.cipher, team_id=h.slack.team_id, user_id=h.alice
        )
    ) is None


@pytest.mark.anyio
async def test_login_with_an_auth_token_links_and_a_bad_token_is_refused_in_the_modal(
    h: Harness,
) -> None:
    tokens = h.taiga.login_tokens("alice")

    async def submit(auth_token: str) -> dict:
        opened_before = len(h.slack.calls("views.open"))
        await h.command("login")
        opened = await h.slack.wait_for("views.open", count=opened_before + 1, within=WAIT)
        payload = h.slack.view_submission_payload(
            opened.response["view"]["id"], user=h.alice,
            values={"auth_token": {"auth_token": auth_token},
                    "refresh": {"refresh": tokens["refresh"]}},
        )
        return (await h.payload(payload)).json()

    refused = await submit("not-a-taiga-token")
    assert refused["response_action"] == "errors" and "auth_token" in refused["errors"]

    accepted = await submit(tokens["auth_token"])
    assert accepted["response_action"] == "update"
    await h.settle()
    link = await h.db.run(
        lambda s: repo.get_link(
            s, cipher=h.bot.services.cipher, team_id=h.slack.team_id, user_id=h.alice
        )
    )
    assert link is not None and link.taiga_username == "alice"
    assert link.refresh_token == tokens["refresh"]


@pytest.mark.anyio
async def test_whoami_shows_the_link_and_logout_forgets_it(h: Harness) -> None:
    await h.link(h.alice, "alice")

    async def said(subcommand: str) -> str:
        _, form = await h.command(subcommand)
        post = await h.slack.wait_for_response_url(form["response_url"], within=WAIT)
        return str(post.body["text"])

    assert "linked to Taiga as *alice*" in await said("whoami")
    assert "no longer holds a token" in await said("logout")
    assert "not linked" in await said("whoami")
    assert await h.db.run(
        lambda s: repo.get_link(
            s, cipher=h.bot.services.cipher, team_id=h.slack.team_id, user_id=h.alice
        )
    ) is None


# --------------------------------------------------------------------------- plan → approve


@pytest.mark.anyio
async def test_plan_command_acks_before_claude_then_approve_creates_and_links_the_items(
    h: Harness,
) -> None:
    await linked(h)
    gate = Gate(story_turn(*STORIES))
    h.anthropic.script(gate)

    response, _ = await h.command(f"plan Sprint 6\n{MINUTES}")

    assert response.status_code == 200  # acknowledged while Claude has not answered
    assert not gate.opened.is_set()
    gate.opened.set()
    proposal_ts = await h.proposal_ts()
    root = h.slack.messages(h.channel)[0]
    assert "Sprint 6" in root["text"] and f"<@{h.alice}>" in root["text"]
    statuses = [c for c in h.slack.calls("chat.update") if c.params["ts"] == proposal_ts]
    assert any("Reading the project" in block_text(c.params) for c in statuses)
    plan = (await h.plans())[0]
    assert plan.state == "proposed" and plan.slack_message_ts == proposal_ts

    response, _ = await h.click("plan_approve", proposal_ts)
    assert response.status_code == 200
    result = await h.wait_update(lambda p: "applied" in str(p.get("text")))

    subjects = {s["subject"] for s in h.taiga.stories(PROJECT_ID)}
    assert {"Export plans as CSV", "Show export history"} <= subjects
    tasks = {t["subject"] for t in h.taiga.tasks(PROJECT_ID)}
    assert {"Write the CSV writer", "Add the download button", "List past exports"} <= tasks
    shown = block_text(result)
    assert "https://taiga.example.test/project/" in shown
    assert not has_button(result, "plan_approve")
    await h.settle()
    assert (await h.plan(plan.id)).state == "done"


@pytest.mark.anyio
async def test_reject_replaces_the_buttons_and_writes_nothing(h: Harness) -> None:
    await linked(h)
    before = len(h.taiga.stories(PROJECT_ID))
    proposal_ts = await propose(h)

    await h.click("plan_reject", proposal_ts)

    rejected = await h.wait_update(lambda p: "Rejected by" in block_text(p))
    assert f"<@{h.alice}>" in block_text(rejected)
    await h.settle()
    assert len(h.taiga.stories(PROJECT_ID)) == before
    assert h.taiga.requests_to("POST", "/userstories*") == []


@pytest.mark.anyio
async def test_someone_other_than_the_requester_cannot_approve(h: Harness) -> None:
    await linked(h)
    await h.link(h.bob, "alice")
    proposal_ts = await propose(h)

    _, response_url = await h.click("plan_approve", proposal_ts, user=h.bob)

    post = await h.slack.wait_for_response_url(response_url, within=WAIT)
    assert post.body["text"] == f"Only <@{h.alice}> can approve this."
    await h.settle()
    assert h.taiga.requests_to("POST", "/userstories*") == []
    assert (await h.plans())[0].state == "proposed"


@pytest.mark.anyio
async def test_a_double_approve_writes_each_item_once(h: Harness) -> None:
    await linked(h)
    proposal_ts = await propose(h)

    first, second = await asyncio.gather(
        h.click("plan_approve", proposal_ts), h.click("plan_approve", proposal_ts)
    )
    await h.wait_update(lambda p: "applied" in str(p.get("text")))
    await h.settle()

    assert first[0].status_code == second[0].status_code == 200
    assert len(h.taiga.requests_to("POST", "/userstories")) == 2
    assert len(h.taiga.requests_to("POST", "/tasks")) == 3
    told = [p for url in (first[1], second[1]) for p in h.slack.response_url_posts(url)]
    assert any("already" in json.dumps(p.body) for p in told)


@pytest.mark.anyio
async def test_each_story_ends_with_a_link_back_to_the_slack_thread_it_came_from(
    h: Harness,
) -> None:
    await linked(h)
    proposal_ts = await propose(h)

    await h.click("plan_approve", proposal_ts)
    await h.wait_update(lambda p: "applied" in str(p.get("text")))
    await h.settle()

    root = h.slack.messages(h.channel)[0]
    plan = (await h.plans())[0]
    assert plan.slack_permalink is not None
    assert plan.slack_permalink.endswith(f"/archives/{h.channel}/p{root['ts'].replace('.', '')}")
    link = f"[Planned in this Slack thread]({plan.slack_permalink})"
    stories = [s for s in h.taiga.stories(PROJECT_ID) if s["subject"] in dict(STORIES)]
    assert len(stories) == 2 and all(s["description"].endswith(link) for s in stories)
    assert all(link not in t["description"] for t in h.taiga.tasks(PROJECT_ID))


@pytest.mark.anyio
async def test_a_thread_slack_gives_no_link_to_is_planned_without_the_link_line(
    h: Harness,
) -> None:
    await linked(h)
    h.slack.fail_next("chat.getPermalink", "message_not_found")
    proposal_ts = await propose(h)

    await h.click("plan_approve", proposal_ts)
    await h.wait_update(lambda p: "applied" in str(p.get("text")))
    await h.settle()

    assert (await h.plans())[0].slack_permalink is None
    stories = [s for s in h.taiga.stories(PROJECT_ID) if s["subject"] in dict(STORIES)]
    assert len(stories) == 2 and not any("Slack thread" in s["description"] for s in stories)


@pytest.mark.anyio
async def test_approve_writes_as_the_linked_taiga_user_without_asking_taiga_who_that_is(
    h: Harness,
) -> None:
    await linked(h)
    proposal_ts = await propose(h)
    h.taiga.clear_requests()

    await h.click("plan_approve", proposal_ts)
    await h.wait_update(lambda p: "applied" in str(p.get("text")))
    await h.settle()

    assert h.taiga.requests_to("GET", "/users/me") == []
    plan = (await h.plans())[0]
    ledger = await h.db.run(lambda s: repo.ledger_for_plan(s, plan.id))
    assert len(ledger) == 5
    assert {row.actor_taiga_id for row in ledger.values()} == {h.taiga.user("alice").id}


@pytest.mark.anyio
async def test_an_expired_proposal_says_so_and_writes_nothing(h: Harness) -> None:
    await linked(h)
    proposal_ts = await propose(h)
    h.wall.offset = h.wall.offset.__class__(hours=h.settings.plan_expiry_hours + 1)

    _, response_url = await h.click("plan_approve", proposal_ts)

    post = await h.slack.wait_for_response_url(response_url, within=WAIT)
    assert "expired" in json.dumps(post.body)
    expired = await h.wait_update(lambda p: "expired" in block_text(p))
    assert not has_button(expired, "plan_approve")
    await h.settle()
    assert (await h.plans())[0].state == "expired"
    assert h.taiga.requests_to("POST", "/userstories*") == []


# --------------------------------------------------------------------------- refusals


@pytest.mark.anyio
async def test_an_unlinked_user_is_told_privately_how_to_log_in(h: Harness) -> None:
    await h.set_project()

    _, form = await h.command(f"plan Sprint 6\n{MINUTES}")

    post = await h.slack.wait_for_response_url(form["response_url"], within=WAIT)
    assert post.body["response_type"] == "ephemeral"
    assert "/taiga login" in post.body["text"]
    await h.settle()
    assert h.slack.messages(h.channel) == [] and h.anthropic.requests == []


@pytest.mark.anyio
async def test_a_channel_without_the_bot_gets_an_invite_hint(h: Harness) -> None:
    await h.link(h.alice, "alice")
    outside = h.slack.add_channel("outside", is_member=False)
    await h.set_project(outside)

    _, form = await h.command(f"plan Sprint 6\n{MINUTES}", channel=outside)

    post = await h.slack.wait_for_response_url(form["response_url"], within=WAIT)
    assert "/invite @Taiga Planner" in post.body["text"]
    await h.settle()
    assert h.anthropic.requests == []


@pytest.mark.anyio
async def test_a_channel_without_a_project_is_told_how_to_set_one(h: Harness) -> None:
    await h.link(h.alice, "alice")

    _, form = await h.command(f"plan Sprint 6\n{MINUTES}")

    post = await h.slack.wait_for_response_url(form["response_url"], within=WAIT)
    assert "/taiga project" in post.body["text"]


@pytest.mark.anyio
async def test_minutes_over_the_limit_are_refused_with_the_limit(
    tmp_path: Path, fake_slack: FakeSlack, fake_taiga: FakeTaiga, fake_anthropic: FakeAnthropic
) -> None:
    async with running_harness(
        tmp_path, fake_slack, fake_taiga, fake_anthropic, max_minutes_chars=50
    ) as h:
        await linked(h)
        _, form = await h.command("plan Sprint 6\n" + "x" * 51)
        post = await h.slack.wait_for_response_url(form["response_url"], within=WAIT)
        assert "limit is 50" in post.body["text"]


@pytest.mark.anyio
async def test_forged_or_stale_requests_get_401(h: Harness) -> None:
    form = h.slack.slash_command_form("/taiga", "help", user=h.alice, channel=h.channel)
    body = urlencode(form)
    forged = h.headers(body, secret="not-the-secret")
    stale = h.headers(body, timestamp=1_600_000_000)

    for headers in (forged, stale):
        response = await h.http.post("/slack/events", content=body.encode(), headers=headers)
        assert response.status_code == 401
    good = await h.http.post("/slack/events", content=body.encode(), headers=h.headers(body))
    assert good.status_code == 200 and "/taiga plan" in good.text


@pytest.mark.anyio
async def test_a_rejected_login_form_never_puts_the_password_in_the_logs(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    await h.command("login")
    opened = await h.slack.wait_for("views.open", within=WAIT)
    payload = h.slack.view_submission_payload(
        opened.response["view"]["id"], user=h.alice,
        values={"username": {"username": "alice"}, "password": {"password": "hunter2-secret"}},
    )
    body = urlencode({"payload": json.dumps(payload)})
    caplog.set_level(logging.DEBUG)

    response = await h.http.post(
        "/slack/events", content=body.encode(), headers=h.headers(body, timestamp=1_600_000_000)
    )

    assert response.status_code == 401
    assert "Invalid request signature" in caplog.text
    assert "hunter2" not in caplog.text


@pytest.mark.anyio
async def test_a_forty_story_proposal_fits_slacks_limits(h: Harness) -> None:
    await linked(h)
    stories = tuple(
        (f"Story {n}: " + "long subject words " * 8, [f"Task {n}.{t} " * 6 for t in range(5)])
        for n in range(40)
    )

    proposal_ts = await propose(h, stories=stories)

    update = [c for c in h.slack.calls("chat.update") if c.params["ts"] == proposal_ts][-1]
    assert update.ok
    assert len(update.params["blocks"]) <= 50
    assert has_button(update.params, "plan_approve")


@pytest.mark.anyio
async def test_help_and_unknown_subcommands_show_usage(h: Harness) -> None:
    for text in ("help", "frobnicate", ""):
        response, _ = await h.command(text)
        assert response.status_code == 200
        assert "/taiga login" in response.text


@pytest.mark.anyio
async def test_project_is_checked_with_the_callers_token_and_then_shown(h: Harness) -> None:
    await h.link(h.alice, "alice")

    _, form = await h.command("project https://tree.taiga.io/project/alice-peer-client-test/")
    post = await h.slack.wait_for_response_url(form["response_url"], within=WAIT)
    assert post.body["response_type"] == "in_channel"
    _, form = await h.command("project")
    post = await h.slack.wait_for_response_url(form["response_url"], within=WAIT)
    assert "alice-peer-client-test" in post.body["text"]
    _, form = await h.command("project admin-admin-private")
    post = await h.slack.wait_for_response_url(form["response_url"], within=WAIT)
    assert post.body["response_type"] == "ephemeral"
    assert "admin-admin-private" in post.body["text"]
    with anyio.fail_after(WAIT):
        await h.bot.services.drain()


@pytest.mark.anyio
async def test_slack_rate_limits_are_retried_by_the_web_client(h: Harness) -> None:
    await linked(h)
    h.slack.rate_limit("chat.postMessage", 1, retry_after=0)

    proposal_ts = await propose(h)

    refused = [c for c in h.slack.calls("chat.postMessage") if c.status == 429]
    assert len(refused) == 1 and proposal_ts


@pytest.mark.anyio
async def test_plan_in_a_direct_message_between_people_says_to_use_a_channel(h: Harness) -> None:
    await h.link(h.alice, "alice")
    dm = "D0PEOPLEDM"  # a DM between two people: the bot can neither read nor post there
    await h.set_project(dm)

    _, form = await h.command(f"plan Sprint 6\n{MINUTES}", channel=dm)

    post = await h.slack.wait_for_response_url(form["response_url"], within=WAIT)
    assert "/invite" not in post.body["text"] and "channel" in post.body["text"]
    await h.settle()
    assert h.anthropic.requests == [] and await h.plans() == []
