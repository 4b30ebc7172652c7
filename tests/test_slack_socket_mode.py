"""Socket Mode: the same Bolt app over a websocket, with /health still served on PORT.

`apps.connections.open` on the fake Slack answers with a ws:// URL on loopback, served here by
an aiohttp websocket that plays Slack's side: hello, one slash command envelope, and the ack."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from aiohttp import WSMsgType, web

from bot.serve import serve_socket_mode
from tests.peers.fake_anthropic import FakeAnthropic
from tests.peers.fake_slack import FakeSlack
from tests.peers.fake_taiga import FakeTaiga
from tests.test_slack_support import WAIT, running_harness

APP_TOKEN = "xapp-1-A0000APP-fake-app-token"


class FakeSocketModeEndpoint:
    """Slack's websocket side: sends envelopes, collects the app's acks by envelope id."""

    def __init__(self) -> None:
        self.outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.acks: dict[str, dict[str, Any]] = {}
        self.acked = asyncio.Condition()
        self.url = ""

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_json({"type": "hello", "num_connections": 1,
                            "connection_info": {"app_id": "A0000APP"}})
        sender = asyncio.create_task(self._send_all(ws))
        try:
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    data = json.loads(message.data)
                    async with self.acked:
                        self.acks[data["envelope_id"]] = data
                        self.acked.notify_all()
        finally:
            sender.cancel()
        return ws

    async def _send_all(self, ws: web.WebSocketResponse) -> None:
        while True:
            await ws.send_json(await self.outbox.get())

    async def ack_for(self, envelope_id: str) -> dict[str, Any]:
        with anyio.fail_after(WAIT):
            async with self.acked:
                await self.acked.wait_for(lambda: envelope_id in self.acks)
        return self.acks[envelope_id]

    @asynccontextmanager
    async def running(self) -> AsyncIterator[FakeSocketModeEndpoint]:
        app = web.Application()
        app.router.add_get("/link", self.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        self.url = f"ws://127.0.0.1:{port}/link"
        try:
            yield self
        finally:
            await runner.cleanup()


@pytest.mark.anyio
async def test_socket_mode_connects_acks_a_command_and_serves_health(
    tmp_path: Path, fake_slack: FakeSlack, fake_taiga: FakeTaiga, fake_anthropic: FakeAnthropic
) -> None:
    async with (
        running_harness(
            tmp_path, fake_slack, fake_taiga, fake_anthropic, slack_app_token=APP_TOKEN
        ) as h,
        FakeSocketModeEndpoint().running() as endpoint,
    ):
        fake_slack.valid_tokens.add(APP_TOKEN)
        # fail_next's extra fields override the body, so this answers ok with the ws URL.
        fake_slack.fail_next("apps.connections.open", "unused", ok=True, url=endpoint.url)
        listener = socket.create_server(("127.0.0.1", 0))  # listening: requests queue up
        port = listener.getsockname()[1]
        stop = asyncio.Event()
        serving = asyncio.create_task(
            serve_socket_mode(
                h.settings, h.bot, h.api, host="127.0.0.1", listener=listener, stop=stop
            )
        )
        try:
            form = fake_slack.slash_command_form("/taiga", "help", user=h.alice, channel=h.channel)
            await endpoint.outbox.put({
                "envelope_id": "env-help", "type": "slash_commands",
                "accepts_response_payload": True, "payload": form,
            })
            ack = await endpoint.ack_for("env-help")
            assert "/taiga login" in json.dumps(ack["payload"])

            form = fake_slack.slash_command_form(
                "/taiga", "whoami", user=h.alice, channel=h.channel
            )
            await endpoint.outbox.put({
                "envelope_id": "env-whoami", "type": "slash_commands",
                "accepts_response_payload": True, "payload": form,
            })
            await endpoint.ack_for("env-whoami")
            post = await fake_slack.wait_for_response_url(form["response_url"], within=WAIT)
            assert "/taiga login" in post.body["text"]

            opened = fake_slack.calls("apps.connections.open")[0]
            assert opened.token == APP_TOKEN
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{port}", timeout=WAIT
            ) as client:
                health = await client.get("/health")
                slack_events = await client.post("/slack/events", content=b"{}")
            assert health.status_code == 200
            assert slack_events.status_code == 404  # Socket Mode: Slack uses the websocket
        finally:
            stop.set()
            with anyio.fail_after(WAIT):
                await serving

