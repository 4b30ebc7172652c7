"""App Home: `app_home_opened` publishes the Home tab (`views.publish`) for linked and unlinked
users, its buttons work, and it is refreshed after a link, an unlink and a plan's end."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from storage import repositories as repo
from storage.models import ConnectLink
from tests.peers.fake_anthropic import FakeAnthropic
from tests.peers.fake_slack import FakeSlack, SlackCall
from tests.peers.fake_taiga import PROJECT_SLUG, FakeTaiga
from tests.peers.slack_harness import WAIT, Harness, running_harness
from tests.test_slack_flow import STORIES, linked, propose

Json = dict[str, Any]


async def open_home(h: Harness, user: str, *, count: int = 1) -> Json:
    """Alice (or `user`) opens the Home tab; the `count`-th view published for them."""
    response = await h.open_home_tab(user)
    assert response.status_code == 200
    return (await published(h, user, count=count)).params["view"]


async def published(h: Harness, user: str, *, count: int = 1) -> SlackCall:
    return await h.slack.wait_for(
        "views.publish", lambda c: c.ok and c.params["user_id"] == user, count=count,
        within=WAIT,
    )


def text_of(view: Json) -> str:
    return json.dumps(view["blocks"], ensure_ascii=False)


def buttons(view: Json) -> dict[str, Json]:
    found = {}
    for block in view["blocks"]:
        for element in [block.get("accessory") or {}, *block.get("elements", [])]:
            if element.get("type") == "button":
                found[element["action_id"]] = element
    return found


@pytest.mark.anyio
async def test_an_unlinked_user_sees_connect_and_no_plans(h: Harness) -> None:
    view = await open_home(h, h.bob)

    assert view["type"] == "home"
    assert "Not connected to Taiga" in text_of(view)
    assert "No plans yet" in text_of(view)
    assert set(buttons(view)) == {"home_connect"}


@pytest.mark.anyio
async def test_a_linked_user_sees_who_they_are_their_projects_and_recent_plans(
    h: Harness,
) -> None:
    await linked(h)
    await propose(h)
    await h.settle()

    view = await open_home(h, h.alice)

    text = text_of(view)
    assert "Connected to Taiga as *Alice Owner* (`alice`)" in text
    assert f"<#{h.channel}>" in text and "Peer client test" in text
    assert f"/project/{PROJECT_SLUG}" in text
    assert "Sprint 6" in text and "Waiting for approval" in text
    assert "2 stories, 3 tasks proposed" in text
    plan = (await h.plans())[0]
    shown = buttons(view)
    assert shown["home_disconnect"]["style"] == "danger" and "home_connect" not in shown
    assert shown[f"home_open_plan:{plan.id}"]["url"] == plan.slack_permalink
    assert plan.slack_permalink and plan.slack_permalink.startswith("https://")


@pytest.mark.anyio
async def test_the_messages_tab_publishes_nothing(h: Harness) -> None:
    response = await h.open_home_tab(h.alice, tab="messages")
    await h.settle()

    assert response.status_code == 200
    assert h.slack.call_count("views.publish") == 0


@pytest.mark.anyio
async def test_the_home_tab_is_refreshed_when_a_plan_ends(h: Harness) -> None:
    await linked(h)
    proposal_ts = await propose(h)
    before = await open_home(h, h.alice)
    assert "Waiting for approval" in text_of(before)

    await h.click("plan_approve", proposal_ts)
    after = (await published(h, h.alice, count=2)).params["view"]

    text = text_of(after)
    assert "Applied" in text and "2 stories and 3 tasks created" in text
    assert "/taskboard/" in text  # the sprint links to its Taiga taskboard
    assert "Waiting for approval" not in text


@pytest.mark.anyio
async def test_disconnect_forgets_the_link_and_refreshes_the_home_tab(h: Harness) -> None:
    await linked(h)
    await open_home(h, h.alice)

    response = await h.click_in_home(h.alice, "home_disconnect")
    assert response.status_code == 200
    refreshed = await published(h, h.alice, count=2)

    assert "Not connected to Taiga" in text_of(refreshed.params["view"])
    cipher = h.bot.services.cipher
    link = await h.db.run(
        lambda s: repo.get_link(s, cipher=cipher, team_id=h.slack.team_id, user_id=h.alice)
    )
    assert link is None
    first = await published(h, h.alice)
    assert refreshed.response["view"]["id"] == first.response["view"]["id"]  # one Home view


@pytest.mark.anyio
async def test_connect_without_public_url_opens_the_login_form_and_a_link_refreshes_home(
    h: Harness,
) -> None:
    await open_home(h, h.alice)

    await h.click_in_home(h.alice, "home_connect")
    opened = await h.slack.wait_for("views.open", within=WAIT)
    submitted = h.slack.view_submission_payload(
        opened.response["view"]["id"], user=h.alice,
        values={"username": {"username": "alice"}, "password": {"password": "alice123"}},
    )
    assert (await h.payload(submitted)).json()["response_action"] == "update"

    view = (await published(h, h.alice, count=2)).params["view"]
    assert "Connected to Taiga as *Alice Owner*" in text_of(view)


@pytest.mark.anyio
async def test_connect_with_public_url_opens_a_modal_with_a_one_time_link(
    tmp_path: Path, fake_slack: FakeSlack, fake_taiga: FakeTaiga, fake_anthropic: FakeAnthropic
) -> None:
    async with running_harness(
        tmp_path, fake_slack, fake_taiga, fake_anthropic, public_url="https://planner.example.test"
    ) as h:
        await open_home(h, h.alice)

        await h.click_in_home(h.alice, "home_connect")
        opened = await h.slack.wait_for("views.open", within=WAIT)

        link = buttons(opened.params["view"])["connect_open"]["url"]
        assert link.startswith("https://planner.example.test/connect/")
        assert len(link.rsplit("/", 1)[1]) >= 40
        assert all(block["type"] != "input" for block in opened.params["view"]["blocks"])
        token = link.rsplit("/", 1)[1]
        stored = await h.db.run(lambda s: s.exec(select(ConnectLink)).one())
        assert stored.token_hash == hashlib.sha256(token.encode()).hexdigest()
        assert (stored.slack_team_id, stored.slack_user_id) == (h.slack.team_id, h.alice)


@pytest.mark.anyio
async def test_open_plan_and_link_buttons_are_acknowledged(h: Harness) -> None:
    await linked(h)
    await propose(h, stories=STORIES[:1])
    await h.settle()
    view = await open_home(h, h.alice)
    open_plan = next(a for a in buttons(view) if a.startswith("home_open_plan:"))

    response = await h.click_in_home(h.alice, open_plan)

    assert response.status_code == 200
