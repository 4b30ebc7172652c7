"""The fake Slack's Home tab as Slack answers it: `views.publish` keeps one view a user (same
id, new hash), refuses a stale hash and non-home views; `app_home_opened` carries the view."""

from __future__ import annotations

from pathlib import Path

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from tests.peers.fake_slack import FakeSlack

HOME = {"type": "home", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "Hi"}}]}


@pytest.mark.anyio
async def test_publishing_again_keeps_the_view_id_and_changes_its_hash(
    fake_slack: FakeSlack, slack_client: AsyncWebClient
) -> None:
    alice = fake_slack.add_user("Alice Doe")

    first = (await slack_client.views_publish(user_id=alice, view=HOME))["view"]
    second = (await slack_client.views_publish(user_id=alice, view=HOME, hash=first["hash"]))[
        "view"
    ]

    assert second["id"] == first["id"] and second["hash"] != first["hash"]
    assert second["type"] == "home" and second["title"] is None and second["team_id"]
    with pytest.raises(SlackApiError) as stale:
        await slack_client.views_publish(user_id=alice, view=HOME, hash=first["hash"])
    assert stale.value.response["error"] == "hash_conflict"


@pytest.mark.anyio
async def test_a_modal_or_an_unknown_user_is_refused(
    fake_slack: FakeSlack, slack_client: AsyncWebClient
) -> None:
    alice = fake_slack.add_user("Alice Doe")
    modal = {**HOME, "type": "modal", "title": {"type": "plain_text", "text": "x"}}

    with pytest.raises(SlackApiError) as not_home:
        await slack_client.views_publish(user_id=alice, view=modal)
    with pytest.raises(SlackApiError) as nobody:
        await slack_client.views_publish(user_id="U404", view=HOME)

    assert not_home.value.response["error"] == "invalid_arguments"
    assert nobody.value.response["error"] == "user_not_found"


@pytest.mark.anyio
async def test_app_home_opened_carries_the_published_view(
    fake_slack: FakeSlack, slack_client: AsyncWebClient
) -> None:
    alice = fake_slack.add_user("Alice Doe")
    before = fake_slack.app_home_opened_event(alice)
    published = (await slack_client.views_publish(user_id=alice, view=HOME))["view"]

    after = fake_slack.app_home_opened_event(alice, tab="messages")

    assert before["type"] == "event_callback" and "view" not in before["event"]
    event = after["event"]
    assert (event["type"], event["user"], event["tab"]) == ("app_home_opened", alice, "messages")
    assert event["channel"].startswith("D") and event["view"]["id"] == published["id"]


def test_the_manifest_has_the_home_tab_and_its_event() -> None:
    text = (Path(__file__).parent.parent / "manifest.yml").read_text()

    assert "home_tab_enabled: true" in text and "- app_home_opened" in text
