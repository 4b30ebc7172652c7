from __future__ import annotations

import json

import aiohttp
import anyio
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from tests.peers.fake_slack import FakeSlack, validate_blocks

pytestmark = pytest.mark.anyio


def _section(i: int) -> dict[str, object]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": f"block {i}"}}


def minutes_by_ada(fake_slack: FakeSlack, text: str) -> tuple[str, str, str]:
    """A #planning channel where Ada posted `text`: (channel id, Ada's user id, the message ts)."""
    channel = fake_slack.add_channel("planning")
    user = fake_slack.add_user("Ada Lovelace")
    return channel, user, fake_slack.add_message(channel, text, user=user)


async def test_auth_test_answers_with_the_bot_identity(
    fake_slack: FakeSlack, slack_client: AsyncWebClient
) -> None:
    response = await slack_client.auth_test()

    assert response["ok"] is True
    assert response["user_id"] == fake_slack.bot_user_id
    assert response["bot_id"] == fake_slack.bot_id
    assert response["team_id"] == fake_slack.team_id
    assert response["url"].startswith("https://")
    assert fake_slack.call_count("auth.test") == 1


async def test_a_bad_or_missing_token_is_invalid_auth(fake_slack: FakeSlack) -> None:
    channel = fake_slack.add_channel()
    bad = AsyncWebClient(token="xoxb-wrong", base_url=fake_slack.api_url)
    with pytest.raises(SlackApiError) as refused:
        await bad.chat_postMessage(channel=channel, text="hi")
    assert refused.value.response["error"] == "invalid_auth"

    anonymous = AsyncWebClient(base_url=fake_slack.api_url)
    with pytest.raises(SlackApiError) as refused:
        await anonymous.auth_test()
    assert refused.value.response["error"] == "invalid_auth"
    assert fake_slack.messages(channel) == []


async def test_post_message_is_stored_and_recorded_with_decoded_blocks(
    fake_slack: FakeSlack, slack_client: AsyncWebClient
) -> None:
    channel, _, parent = minutes_by_ada(fake_slack, "minutes…")

    first = await slack_client.chat_postMessage(
        channel=channel, thread_ts=parent, text="working", blocks=[_section(1)]
    )
    second = await slack_client.chat_postMessage(channel=channel, text="again")

    assert first["channel"] == channel
    assert first["message"]["text"] == "working"
    assert first["message"]["bot_id"] == fake_slack.bot_id
    assert float(second["ts"]) > float(first["ts"]) > float(parent)
    call = fake_slack.calls("chat.postMessage")[0]
    assert call.params["blocks"] == [_section(1)]
    assert call.params["thread_ts"] == parent
    assert [m["text"] for m in fake_slack.thread(channel, parent)] == ["minutes…", "working"]
    assert [m["text"] for m in fake_slack.messages(channel)] == ["minutes…", "working", "again"]


async def test_form_encoded_posts_are_accepted(fake_slack: FakeSlack) -> None:
    channel = fake_slack.add_channel()
    form = {"channel": channel, "text": "form", "blocks": json.dumps([_section(1)])}
    headers = {"Authorization": f"Bearer {fake_slack.bot_token}"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{fake_slack.api_url}chat.postMessage", data=form, headers=headers) as res,
    ):
        body = await res.json()

    assert res.status == 200
    assert body["ok"] is True
    assert fake_slack.calls("chat.postMessage")[0].params["blocks"] == [_section(1)]


async def test_fifty_one_blocks_are_invalid_blocks(
    fake_slack: FakeSlack, slack_client: AsyncWebClient
) -> None:
    channel = fake_slack.add_channel()

    await slack_client.chat_postMessage(
        channel=channel, text="ok", blocks=[_section(i) for i in range(50)]
    )
    with pytest.raises(SlackApiError) as refused:
        await slack_client.chat_postMessage(
            channel=channel, text="too many", blocks=[_section(i) for i in range(51)]
        )

    assert refused.value.response["error"] == "invalid_blocks"
    assert refused.value.response["response_metadata"]["messages"]
    assert len(fake_slack.messages(channel)) == 1


@pytest.mark.parametrize(
    ("blocks", "fragment"),
    [
        ([{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}], "/blocks/0/text"),
        ([{"type": "header", "text": {"type": "plain_text", "text": "x" * 151}}], "/blocks/0"),
        (
            [
                {
                    "type": "actions",
                    "elements": [
                        {
                            "type": "button",
                            "action_id": "a",
                            "text": {"type": "plain_text", "text": "Go"},
                            "value": "v" * 2001,
                        }
                    ],
                }
            ],
            "/value",
        ),
        ([{**_section(1), "block_id": "b"}, {**_section(2), "block_id": "b"}], "duplicate"),
        (
            [
                {
                    "type": "actions",
                    "elements": [
                        {
                            "type": "button",
                            "action_id": "a",
                            "text": {"type": "plain_text", "text": t},
                        }
                        for t in ("One", "Two")
                    ],
                }
            ],
            "duplicate action_id",
        ),
        ([{"type": "section", "text": {"type": "mrkdwn", "text": ""}}], "more than 0"),
        ([{"type": "bogus"}], "unsupported type"),
    ],
)
def test_validate_blocks_applies_slacks_limits(blocks: list[object], fragment: str) -> None:
    errors = validate_blocks(blocks)

    assert any(fragment in e for e in errors), errors


async def test_over_long_text_is_msg_too_long(
    fake_slack: FakeSlack, slack_client: AsyncWebClient
) -> None:
    channel = fake_slack.add_channel()

    with pytest.raises(SlackApiError) as refused:
        await slack_client.chat_postMessage(channel=channel, text="x" * 40_001)

    assert refused.value.response["error"] == "msg_too_long"


async def test_a_channel_without_the_bot_is_not_in_channel(
    fake_slack: FakeSlack, slack_client: AsyncWebClient
) -> None:
    outside = fake_slack.add_channel("random", is_member=False)

    with pytest.raises(SlackApiError) as refused:
        await slack_client.chat_postMessage(channel=outside, text="hi")
    assert refused.value.response["error"] == "not_in_channel"

    fake_slack.set_member(outside, True)
    await slack_client.chat_postMessage(channel=outside, text="hi")
    assert [c.error for c in fake_slack.calls("chat.postMessage")] == ["not_in_channel", None]


async def test_unknown_channel_is_channel_not_found(slack_client: AsyncWebClient) -> None:
    with pytest.raises(SlackApiError) as refused:
        await slack_client.chat_postMessage(channel="C404", text="hi")

    assert refused.value.response["error"] == "channel_not_found"


async def test_chat_update_replaces_the_bots_message_in_place(
    fake_slack: FakeSlack, slack_client: AsyncWebClient
) -> None:
    channel = fake_slack.add_channel()
    user = fake_slack.add_user("Grace Hopper")
    posted = await slack_client.chat_postMessage(channel=channel, text="step 1")

    updated = await slack_client.chat_update(
        channel=channel, ts=posted["ts"], text="step 2", blocks=[_section(2)]
    )
    theirs = fake_slack.add_message(channel, "mine", user=user)
    with pytest.raises(SlackApiError) as refused:
        await slack_client.chat_update(channel=channel, ts=theirs, text="hijack")

    assert updated["ts"] == posted["ts"]
    assert updated["text"] == "step 2"
    assert fake_slack.message(channel, posted["ts"])["blocks"] == [_section(2)]
    assert refused.value.response["error"] == "cant_update_message"
    assert len(fake_slack.messages(channel)) == 2


async def test_post_ephemeral_returns_message_ts(
    fake_slack: FakeSlack, slack_client: AsyncWebClient
) -> None:
    channel = fake_slack.add_channel()
    user = fake_slack.add_user("Alan Turing")

    response = await slack_client.chat_postEphemeral(channel=channel, user=user, text="psst")

    assert response["message_ts"]
    assert [e["text"] for e in fake_slack.ephemerals(channel, user=user)] == ["psst"]
    assert fake_slack.messages(channel) == []


async def test_conversations_replies_pages_with_cursors(
    fake_slack: FakeSlack, slack_client: AsyncWebClient
) -> None:
    channel = fake_slack.add_channel()
    user = fake_slack.add_user("Ada Lovelace")
    parent = fake_slack.add_thread(channel, "p", "r1", "r2", "r3", "r4", user=user)

    texts: list[str] = []
    pages = 0
    cursor: str | None = None
    while True:
        page = await slack_client.conversations_replies(
            channel=channel, ts=parent, limit=2, cursor=cursor
        )
        pages += 1
        texts += [m["text"] for m in page["messages"]]
        cursor = page["response_metadata"]["next_cursor"]
        assert page["has_more"] is bool(cursor)
        if not cursor:
            break

    assert pages == 3
    assert texts == ["p", "r1", "r2", "r3", "r4"]
    assert [c.params["limit"] for c in fake_slack.calls("conversations.replies")] == ["2"] * 3


async def test_conversations_replies_refuses_a_bad_cursor_and_unknown_thread(
    fake_slack: FakeSlack, slack_client: AsyncWebClient
) -> None:
    channel = fake_slack.add_channel()
    user = fake_slack.add_user("Ada Lovelace")
    parent = fake_slack.add_message(channel, "p", user=user)

    with pytest.raises(SlackApiError) as bad_cursor:
        await slack_client.conversations_replies(channel=channel, ts=parent, cursor="nope!")
    with pytest.raises(SlackApiError) as unknown:
        await slack_client.conversations_replies(channel=channel, ts="1.000001")

    assert bad_cursor.value.response["error"] == "invalid_cursor"
    assert unknown.value.response["error"] == "thread_not_found"


async def test_users_info_conversations_info_and_open(
    fake_slack: FakeSlack, slack_client: AsyncWebClient
) -> None:
    channel = fake_slack.add_channel("planning")
    user = fake_slack.add_user("Ada Lovelace", display_name="ada")

    info = await slack_client.users_info(user=user)
    chan = await slack_client.conversations_info(channel=channel)
    dm = await slack_client.conversations_open(users=user)
    again = await slack_client.conversations_open(users=user)
    await slack_client.chat_postMessage(channel=dm["channel"]["id"], text="hello")

    assert info["user"]["real_name"] == "Ada Lovelace"
    assert info["user"]["profile"]["display_name"] == "ada"
    assert chan["channel"]["name"] == "planning"
    assert chan["channel"]["is_member"] is True
    assert dm["channel"]["id"].startswith("D")
    assert again["channel"]["id"] == dm["channel"]["id"]
    assert again["already_open"] is True
    assert [m["text"] for m in fake_slack.messages(dm["channel"]["id"])] == ["hello"]
    with pytest.raises(SlackApiError) as missing:
        await slack_client.users_info(user="U404")
    assert missing.value.response["error"] == "user_not_found"


async def test_views_open_and_update(fake_slack: FakeSlack, slack_client: AsyncWebClient) -> None:
    modal = {
        "type": "modal",
        "callback_id": "login",
        "title": {"type": "plain_text", "text": "Connect Taiga"},
        "blocks": [_section(1)],
    }

    opened = await slack_client.views_open(trigger_id=fake_slack.mint_trigger_id(), view=modal)
    view_id = opened["view"]["id"]
    updated = await slack_client.views_update(
        view_id=view_id, hash=opened["view"]["hash"], view={**modal, "blocks": [_section(2)]}
    )
    fake_slack.expire_trigger("old")
    with pytest.raises(SlackApiError) as expired:
        await slack_client.views_open(trigger_id="old", view=modal)

    assert view_id.startswith("V")
    assert updated["view"]["id"] == view_id
    assert fake_slack.views()[0]["blocks"] == [_section(2)]
    assert expired.value.response["error"] == "expired_trigger_id"


async def test_rate_limited_calls_are_retried_by_the_sdk(fake_slack: FakeSlack) -> None:
    channel = fake_slack.add_channel()
    client = AsyncWebClient(
        token=fake_slack.bot_token,
        base_url=fake_slack.api_url,
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=2)],
    )
    fake_slack.rate_limit("chat.postMessage", times=1)

    response = await client.chat_postMessage(channel=channel, text="eventually")

    assert response["ok"] is True
    calls = fake_slack.calls("chat.postMessage")
    assert [c.status for c in calls] == [429, 200]
    assert [m["text"] for m in fake_slack.messages(channel)] == ["eventually"]


async def test_fail_next_injects_an_error_once(
    fake_slack: FakeSlack, slack_client: AsyncWebClient
) -> None:
    channel = fake_slack.add_channel()
    fake_slack.fail_next("chat.postMessage", "internal_error")

    with pytest.raises(SlackApiError) as failed:
        await slack_client.chat_postMessage(channel=channel, text="one")
    await slack_client.chat_postMessage(channel=channel, text="two")

    assert failed.value.response["error"] == "internal_error"
    assert [m["text"] for m in fake_slack.messages(channel)] == ["two"]


async def test_response_url_records_posts(fake_slack: FakeSlack) -> None:
    channel = fake_slack.add_channel()
    user = fake_slack.add_user("Ada Lovelace")
    form = fake_slack.slash_command_form("/taiga", "plan sprint 6", user=user, channel=channel)

    response = await AsyncWebhookClient(form["response_url"]).send(
        text="Working on it", response_type="ephemeral"
    )
    post = await fake_slack.wait_for_response_url(form["response_url"])

    assert response.status_code == 200
    assert post.body == {"text": "Working on it", "response_type": "ephemeral"}
    assert form["command"] == "/taiga"
    assert form["trigger_id"]


async def test_wait_for_returns_a_matching_call_from_background_work(
    fake_slack: FakeSlack, slack_client: AsyncWebClient
) -> None:
    channel = fake_slack.add_channel()

    async def background() -> None:
        for step in ("one", "two", "done"):
            await slack_client.chat_postMessage(channel=channel, text=step)

    async with anyio.create_task_group() as tg:
        tg.start_soon(background)
        call = await fake_slack.wait_for(
            "chat.postMessage", lambda c: c.params.get("text") == "done", within=10
        )

    assert call.ok
    assert fake_slack.call_count("chat.postMessage") == 3


async def test_wait_for_gives_up_after_its_bound(fake_slack: FakeSlack) -> None:
    with pytest.raises(TimeoutError, match=r"chat\.update"):
        await fake_slack.wait_for("chat.update", within=0.05)


async def test_blocks_carrying_too_much_text_are_msg_blocks_too_long(
    fake_slack: FakeSlack, slack_client: AsyncWebClient
) -> None:
    channel = fake_slack.add_channel()
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 2500}}] * 5

    with pytest.raises(SlackApiError) as refused:
        await slack_client.chat_postMessage(channel=channel, text="long", blocks=blocks)

    assert refused.value.response["error"] == "msg_blocks_too_long"


async def test_block_action_payload_clicks_a_button_of_a_posted_message(
    fake_slack: FakeSlack, slack_client: AsyncWebClient
) -> None:
    channel = fake_slack.add_channel("planning")
    user = fake_slack.add_user("Ada Lovelace")
    button = {
        "type": "button",
        "action_id": "plan_approve",
        "value": "plan-1",
        "text": {"type": "plain_text", "text": "Approve"},
    }
    actions = {"type": "actions", "block_id": "plan_actions", "elements": [button]}
    posted = await slack_client.chat_postMessage(channel=channel, text="plan", blocks=[actions])

    payload = fake_slack.block_action_payload(channel, posted["ts"], "plan_approve", user=user)

    assert payload["type"] == "block_actions"
    assert payload["user"]["id"] == user
    assert payload["container"] == {
        "type": "message",
        "message_ts": posted["ts"],
        "channel_id": channel,
        "is_ephemeral": False,
    }
    assert payload["actions"][0]["value"] == "plan-1"
    assert payload["actions"][0]["block_id"] == "plan_actions"
    assert payload["response_url"].startswith(fake_slack.base_url)
    with pytest.raises(KeyError):
        fake_slack.block_action_payload(channel, posted["ts"], "missing", user=user)


async def test_view_submission_payload_carries_the_typed_values(
    fake_slack: FakeSlack, slack_client: AsyncWebClient
) -> None:
    user = fake_slack.add_user("Ada Lovelace")
    modal = {
        "type": "modal",
        "callback_id": "taiga_login",
        "title": {"type": "plain_text", "text": "Connect Taiga"},
        "blocks": [],
    }
    opened = await slack_client.views_open(trigger_id=fake_slack.mint_trigger_id(), view=modal)

    payload = fake_slack.view_submission_payload(
        opened["view"]["id"], user=user, values={"username": {"value": "ada"}}
    )

    assert payload["type"] == "view_submission"
    assert payload["view"]["callback_id"] == "taiga_login"
    assert payload["view"]["state"]["values"]["username"]["value"]["value"] == "ada"


async def test_app_mention_event_is_stored_in_the_thread(
    fake_slack: FakeSlack, slack_client: AsyncWebClient
) -> None:
    channel, user, parent = minutes_by_ada(fake_slack, "minutes")

    envelope = fake_slack.app_mention_event(
        channel, f"<@{fake_slack.bot_user_id}> plan sprint 6", user=user, thread_ts=parent
    )
    replies = await slack_client.conversations_replies(channel=channel, ts=parent)

    assert envelope["type"] == "event_callback"
    assert envelope["event"]["thread_ts"] == parent
    assert envelope["event_id"].startswith("Ev")
    assert [m["text"] for m in replies["messages"]][-1] == envelope["event"]["text"]


async def test_reactions_and_permalinks(
    fake_slack: FakeSlack, slack_client: AsyncWebClient
) -> None:
    channel, _, ts = minutes_by_ada(fake_slack, "minutes")

    await slack_client.reactions_add(channel=channel, timestamp=ts, name="eyes")
    with pytest.raises(SlackApiError) as twice:
        await slack_client.reactions_add(channel=channel, timestamp=ts, name="eyes")
    reacted = fake_slack.message(channel, ts)["reactions"]
    await slack_client.reactions_remove(channel=channel, timestamp=ts, name="eyes")
    link = await slack_client.chat_getPermalink(channel=channel, message_ts=ts)

    assert twice.value.response["error"] == "already_reacted"
    assert reacted == [{"name": "eyes", "users": [fake_slack.bot_user_id], "count": 1}]
    assert not fake_slack.message(channel, ts).get("reactions")
    assert link["permalink"].endswith(f"/archives/{channel}/p{ts.replace('.', '')}")
