"""The fake Slack's chat streaming methods, driven through slack_sdk's `chat_stream()`: Slack's
answers, its checks of recipients and chunks, and the refusals a test can switch on."""

from __future__ import annotations

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.models.messages.chunk import TaskUpdateChunk
from slack_sdk.web.async_client import AsyncWebClient

from tests.peers.fake_slack import FakeSlack

pytestmark = pytest.mark.anyio


def thread(fake_slack: FakeSlack) -> tuple[str, str, str]:
    """(channel, the user who asked, the ts of their message)."""
    channel = fake_slack.add_channel("planning")
    user = fake_slack.add_user("Ada Lovelace")
    return channel, user, fake_slack.add_message(channel, "plan Sprint 6", user=user)


async def test_a_stream_starts_appends_and_stops_with_slacks_answers(
    fake_slack: FakeSlack, slack_client: AsyncWebClient
) -> None:
    channel, user, parent = thread(fake_slack)
    stream = await slack_client.chat_stream(
        channel=channel, thread_ts=parent, recipient_user_id=user,
        recipient_team_id=fake_slack.team_id,
    )

    started = await stream.append(chunks=[TaskUpdateChunk(id="read", title="Reading",
                                                          status="in_progress")])
    appended = await stream.append(chunks=[TaskUpdateChunk(id="read", title="Reading",
                                                           status="complete")])
    button = {"type": "button", "action_id": "go", "text": {"type": "plain_text", "text": "Go"}}
    stopped = await stream.stop(blocks=[{"type": "actions", "elements": [button]}])

    assert started is not None and appended is not None
    assert started.data == {"ok": True, "channel": channel, "ts": stream.ts}
    assert appended.data == {"ok": True, "channel": channel, "ts": stream.ts}
    assert stopped["ts"] == stream.ts and stopped["message"]["streaming_state"] == "completed"
    assert stopped["message"]["thread_ts"] == parent
    assert stopped["message"]["blocks"][0]["elements"][0]["action_id"] == "go"
    statuses = [c["status"] for c in fake_slack.streamed_chunks(channel, str(stream.ts))]
    assert statuses == ["in_progress", "complete"]
    with pytest.raises(SlackApiError) as late:
        await slack_client.chat_appendStream(channel=channel, ts=str(stream.ts), chunks=[])
    assert late.value.response["error"] == "message_not_in_streaming_state"


async def test_a_channel_stream_needs_its_recipient_and_chunks_are_checked(
    fake_slack: FakeSlack, slack_client: AsyncWebClient
) -> None:
    channel, user, parent = thread(fake_slack)

    with pytest.raises(SlackApiError) as no_recipient:
        await slack_client.chat_startStream(channel=channel, thread_ts=parent)
    with pytest.raises(SlackApiError) as bad_chunk:
        await slack_client.chat_startStream(
            channel=channel, thread_ts=parent, recipient_user_id=user,
            recipient_team_id=fake_slack.team_id,
            chunks=[{"type": "task_update", "id": "x", "title": "X", "status": "done"}],
        )

    assert no_recipient.value.response["error"] == "invalid_arguments"
    assert bad_chunk.value.response["error"] == "invalid_chunks"
    assert "invalid status" in str(bad_chunk.value.response["response_metadata"])


@pytest.mark.parametrize(
    ("refusal", "refused_methods"),
    [
        ("unknown_method", {"chat.startStream", "chat.appendStream", "chat.stopStream"}),
        ("method_not_supported_for_channel_type", {"chat.startStream"}),
        ("message_not_in_streaming_state", {"chat.appendStream", "chat.stopStream"}),
    ],
)
async def test_refusals_are_switched_on_per_test(
    fake_slack: FakeSlack, slack_client: AsyncWebClient, refusal: str, refused_methods: set[str]
) -> None:
    channel, user, parent = thread(fake_slack)
    fake_slack.refuse_streaming(refusal)
    stream = await slack_client.chat_stream(
        channel=channel, thread_ts=parent, recipient_user_id=user,
        recipient_team_id=fake_slack.team_id,
    )

    with pytest.raises(SlackApiError) as refused:  # starting is the first append's work
        await stream.append(chunks=[TaskUpdateChunk(id="a", title="A", status="in_progress")])
        await stream.stop()
    assert refused.value.response["error"] == refusal
    if "chat.stopStream" in refused_methods:  # refused also when the first step already was
        with pytest.raises(SlackApiError) as stopped:
            await slack_client.chat_stopStream(channel=channel, ts=parent)
        assert stopped.value.response["error"] == refusal

    answered = {c.method for c in fake_slack.calls() if c.error == refusal}
    assert answered <= refused_methods and answered
