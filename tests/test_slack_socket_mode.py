"""Socket Mode: the same Bolt app over a websocket, with /health still served on PORT.

The fake Slack plays Slack's side: `apps.connections.open` (app-level token) hands out a
loopback ws:// URL that the fake itself serves; envelopes go out and acks come back there."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from tests.peers.fake_anthropic import FakeAnthropic
from tests.peers.fake_slack import FakeSlack
from tests.peers.fake_taiga import FakeTaiga
from tests.peers.slack_harness import WAIT, running_harness


@pytest.mark.anyio
async def test_socket_mode_connects_acks_a_command_and_serves_health(
    tmp_path: Path, fake_slack: FakeSlack, fake_taiga: FakeTaiga, fake_anthropic: FakeAnthropic
) -> None:
    async with (
        running_harness(
            tmp_path, fake_slack, fake_taiga, fake_anthropic,
            slack_app_token=fake_slack.app_token,
        ) as h,
        h.api.router.lifespan_context(h.api),  # the app's lifespan connects the websocket
    ):
        form = fake_slack.slash_command_form("/taiga", "help", user=h.alice, channel=h.channel)
        ack = await fake_slack.send_envelope(
            fake_slack.socket_envelope("slash_commands", form), within=WAIT
        )
        assert "/taiga login" in json.dumps(ack["payload"])

        form = fake_slack.slash_command_form("/taiga", "whoami", user=h.alice, channel=h.channel)
        await fake_slack.send_envelope(
            fake_slack.socket_envelope("slash_commands", form), within=WAIT
        )
        post = await fake_slack.wait_for_response_url(form["response_url"], within=WAIT)
        assert "/taiga login" in post.body["text"]

        [opened] = fake_slack.calls("apps.connections.open")
        assert opened.ok and opened.token == fake_slack.app_token
        health = await h.http.get("/health")
        slack_events = await h.http.post("/slack/events", content=b"{}")
    assert health.status_code == 200
    assert health.json()["slack"] == "socket connected"
    assert slack_events.status_code == 404  # Socket Mode: Slack uses the websocket


@pytest.mark.anyio
async def test_apps_connections_open_needs_the_app_level_token(fake_slack: FakeSlack) -> None:
    bot = AsyncWebClient(token=fake_slack.bot_token, base_url=fake_slack.api_url)
    app = AsyncWebClient(token=fake_slack.app_token, base_url=fake_slack.api_url)

    opened = await app.apps_connections_open(app_token=fake_slack.app_token)
    with pytest.raises(SlackApiError) as refused:
        await bot.apps_connections_open(app_token=fake_slack.bot_token)
    with pytest.raises(SlackApiError) as misused:
        await app.auth_test()

    assert str(opened["url"]).startswith(f"ws://127.0.0.1:{fake_slack.port}/link/?ticket=")
    assert refused.value.response["error"] == "not_allowed_token_type"
    assert misused.value.response["error"] == "not_allowed_token_type"


@pytest.mark.anyio
async def test_health_is_503_while_the_socket_is_down(
    tmp_path: Path, fake_slack: FakeSlack, fake_taiga: FakeTaiga, fake_anthropic: FakeAnthropic
) -> None:
    async with (
        running_harness(
            tmp_path, fake_slack, fake_taiga, fake_anthropic,
            slack_app_token=fake_slack.app_token,
        ) as h,
        h.api.router.lifespan_context(h.api),
    ):
        assert (await h.http.get("/health")).status_code == 200
        fake_slack.fail_next("apps.connections.open", "internal_error", times=1000)  # no way back
        await h.api.state.planner.socket.handler.client.disconnect()

        with anyio.fail_after(WAIT):
            health = await h.http.get("/health")
            while health.status_code == 200:
                await anyio.sleep(0.05)
                health = await h.http.get("/health")

    assert health.status_code == 503
    assert health.json()["slack"] == "socket disconnected"
    assert health.json()["reason"] == "the Socket Mode websocket to Slack is down"
