"""The harness for the Slack tests: the real app behind FastAPI, signed requests to
`/slack/events`, and the fake Slack, Anthropic and Taiga peers on loopback.

Fixture `h`: a running harness with nobody linked yet. A test module that wants Alice linked
with the channel's project overrides `h` by asking for this one (see test_slack_mentions.py)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import anyio
import httpx
import pytest
from anthropic import AsyncAnthropic
from fastapi import FastAPI
from slack_sdk.signature import SignatureVerifier

from agent.runtime import build_runtime
from agent.settings import Settings
from bot.app import SlackBot, build_bot, build_slack_client
from bot.server import create_api
from storage import repositories as repo
from storage.crypto import TokenCipher, generate_key
from storage.db import Database
from taiga.client import TaigaClient
from tests.peers.clock import FakeClock
from tests.peers.fake_anthropic import FakeAnthropic, message, text, tool_use
from tests.peers.fake_slack import FakeSlack
from tests.peers.fake_taiga import PROJECT_ID, PROJECT_SLUG, FakeTaiga

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
WAIT = 10.0
Json = dict[str, Any]


@dataclass
class WallClock:
    """The injected wall clock: real time plus whatever the test adds."""

    offset: timedelta = field(default_factory=timedelta)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


def story_turn(*stories: tuple[str, Sequence[str]], summary: str = "Planned.") -> Json:
    """One model turn proposing `stories` (subject, task subjects), which ends the loop."""
    calls = [
        tool_use(
            "taiga_create_user_story",
            {"subject": subject, "tasks": [{"subject": t} for t in tasks]},
        )
        for subject, tasks in stories
    ]
    return message(text(summary), *calls)


@dataclass(eq=False)
class Harness:
    slack: FakeSlack
    taiga: FakeTaiga
    anthropic: FakeAnthropic
    bot: SlackBot
    api: FastAPI
    db: Database
    http: httpx.AsyncClient
    clock: FakeClock
    wall: WallClock
    channel: str
    alice: str
    bob: str
    settings: Settings

    # --- signed requests -----------------------------------------------------------------

    def headers(self, body: str, *, timestamp: int | None = None, secret: str | None = None,
                content_type: str = "application/x-www-form-urlencoded") -> dict[str, str]:
        secret = secret or self.settings.slack_signing_secret.get_secret_value()
        return signed_headers(body, timestamp=timestamp, secret=secret, content_type=content_type)

    async def post(self, body: str, content_type: str, **extra: str) -> httpx.Response:
        headers = {**self.headers(body, content_type=content_type), **extra}
        return await self.http.post("/slack/events", content=body.encode(), headers=headers)

    async def command(
        self, text: str, *, user: str | None = None, channel: str | None = None
    ) -> tuple[httpx.Response, Json]:
        form = self.slack.slash_command_form(
            "/taiga", text, user=user or self.alice, channel=channel or self.channel
        )
        response = await self.post(urlencode(form), "application/x-www-form-urlencoded")
        return response, form

    async def payload(self, payload: Json) -> httpx.Response:
        body = urlencode({"payload": json.dumps(payload)})
        return await self.post(body, "application/x-www-form-urlencoded")

    async def event(self, envelope: Json, **headers: str) -> httpx.Response:
        return await self.post(json.dumps(envelope), "application/json", **headers)

    async def open_home_tab(self, user: str, *, tab: str = "home") -> httpx.Response:
        """`user` opens the app's Home (or Messages) tab: Slack's `app_home_opened` event."""
        return await self.event(self.slack.app_home_opened_event(user, tab=tab))

    async def click_in_home(self, user: str, action_id: str) -> httpx.Response:
        """`user` clicks the button `action_id` in their Home tab."""
        return await self.payload(self.slack.home_action_payload(user, action_id))

    async def click(self, action_id: str, message_ts: str, *, user: str | None = None,
                    channel: str | None = None) -> tuple[httpx.Response, str]:
        payload = self.slack.block_action_payload(
            channel or self.channel, message_ts, action_id, user=user or self.alice
        )
        return await self.payload(payload), payload["response_url"]

    async def tick(self, message_ts: str, value: str, *, ticked: bool,
                   user: str | None = None) -> tuple[httpx.Response, str]:
        """Tick (or untick) the checkbox option `value` ("2", "1.2") of a message."""
        payload = self.slack.checkbox_action_payload(
            self.channel, message_ts, value, ticked=ticked, user=user or self.alice
        )
        return await self.payload(payload), payload["response_url"]

    # --- arranging -------------------------------------------------------------------------

    async def link(self, slack_user: str, taiga_username: str) -> None:
        """Link like the login modal does (tokens from the fake Taiga, stored encrypted)."""
        await link_account(
            self.db, self.bot.services.cipher, self.slack, self.taiga, slack_user, taiga_username
        )

    async def set_project(self, channel: str | None = None) -> None:
        await set_channel_project(self.db, self.slack, channel or self.channel, self.alice)

    async def plan(self, plan_id: str) -> Any:
        return await self.db.run(lambda s: repo.get_plan(s, plan_id))

    async def plans(self) -> list[Any]:
        from sqlmodel import select

        from storage.models import Plan

        return await self.db.run(lambda s: list(s.exec(select(Plan)).all()))

    # --- waiting ---------------------------------------------------------------------------

    async def wait_update(self, predicate: Callable[[Json], bool], *, count: int = 1) -> Json:
        """The `count`-th successful chat.update whose params match."""
        call = await self.slack.wait_for(
            "chat.update", lambda c: c.ok and predicate(c.params), count=count, within=WAIT
        )
        return call.params

    async def proposal_ts(self) -> str:
        params = await self.wait_update(lambda p: has_button(p, "plan_approve"))
        return str(params["ts"])

    async def settle(self) -> None:
        """Wait (bounded) until the background work started so far has finished."""
        with anyio.fail_after(WAIT):
            await self.bot.services.drain()


def signed_headers(
    body: str,
    *,
    timestamp: int | None = None,
    secret: str = SIGNING_SECRET,
    content_type: str = "application/x-www-form-urlencoded",
) -> dict[str, str]:
    """The headers Slack sends with `body`, signed with `secret`."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    signature = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
    assert signature is not None
    return {
        "content-type": content_type,
        "x-slack-request-timestamp": ts,
        "x-slack-signature": signature,
    }


async def link_account(
    db: Database, cipher: TokenCipher, slack: FakeSlack, taiga: FakeTaiga, slack_user: str,
    taiga_username: str,
) -> None:
    """Store a Taiga link as the login modal does (tokens from the fake Taiga, encrypted)."""
    tokens = taiga.login_tokens(taiga_username)
    user = taiga.user(taiga_username)
    await db.run(
        lambda s: repo.save_link(
            s, cipher=cipher, team_id=slack.team_id, user_id=slack_user,
            taiga_user_id=user.id, taiga_username=taiga_username, taiga_full_name=user.full_name,
            tokens=repo.StoredTokens(tokens["auth_token"], tokens["refresh"]),
        )
    )


async def set_channel_project(db: Database, slack: FakeSlack, channel: str, set_by: str) -> None:
    """The channel plans in the fake Taiga's project, as `/taiga project` would store it."""
    await db.run(
        lambda s: repo.set_channel_project(
            s, team_id=slack.team_id, channel_id=channel,
            project_id=PROJECT_ID, project_slug=PROJECT_SLUG, project_name="Peer client test",
            set_by=set_by,
        )
    )


def has_button(params: Json, action_id: str) -> bool:
    return any(
        element.get("action_id") == action_id
        for block in params.get("blocks") or []
        if block.get("type") == "actions"
        for element in block.get("elements") or []
    )


def block_text(params: Json) -> str:
    """All the text of a message's blocks, for assertions."""
    return json.dumps(params.get("blocks") or [], ensure_ascii=False) + str(params.get("text"))


@asynccontextmanager
async def running_harness(
    tmp_path: Path,
    fake_slack: FakeSlack,
    fake_taiga: FakeTaiga,
    fake_anthropic: FakeAnthropic,
    **overrides: Any,
) -> AsyncIterator[Harness]:
    anthropic_key = overrides.pop("anthropic_api_key", "test-key")
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        slack_bot_token=fake_slack.bot_token,
        slack_signing_secret=overrides.pop("slack_signing_secret", SIGNING_SECRET),
        slack_api_url=fake_slack.api_url,
        anthropic_api_key=anthropic_key,
        anthropic_base_url=fake_anthropic.base_url,
        taiga_api_url=fake_taiga.api_url,
        taiga_web_url="https://taiga.example.test",
        # The status message updated in place unless a test streams (test_slack_streaming.py).
        **{
            "slack_streaming": False,
            "database_url": f"sqlite:///{tmp_path / 'planner.db'}",
            "token_encryption_keys": [generate_key()],
            **overrides,
        },
    )
    db = Database(settings.database_url.get_secret_value())
    db.migrate()
    clock = FakeClock()
    wall = WallClock()
    runtime = build_runtime(
        settings,
        db=db,
        clock=clock,
        taiga=TaigaClient(settings.taiga_api_url, clock=clock, timeout=5.0),
        anthropic=AsyncAnthropic(api_key=anthropic_key, base_url=fake_anthropic.base_url,
                                 max_retries=0),
    )
    bot = build_bot(runtime, slack=build_slack_client(settings), now=wall)
    api = create_api(settings, runtime=runtime, slack=bot)
    channel = fake_slack.add_channel("planning")
    alice = fake_slack.add_user("Alice Doe", display_name="alice")
    bob = fake_slack.add_user("Bob Roe", display_name="bob")
    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        harness = Harness(
            slack=fake_slack, taiga=fake_taiga, anthropic=fake_anthropic, bot=bot, api=api, db=db,
            http=http, clock=clock, wall=wall, channel=channel, alice=alice, bob=bob,
            settings=settings,
        )
        try:
            yield harness
        finally:
            with anyio.fail_after(WAIT):
                await bot.services.drain()
            await bot.aclose()
            await runtime.aclose()


class Gate:
    """A scripted model turn that waits until the test opens the gate."""

    def __init__(self, turn: Json) -> None:
        self.turn = turn
        self.reached = threading.Event()
        self.opened = threading.Event()

    def __call__(self, _body: Json) -> Json:
        self.reached.set()
        assert self.opened.wait(WAIT), "the test never opened the gate"
        return self.turn


# ------------------------------------------------------------------------- unit tests


@pytest.fixture
async def h(
    tmp_path: Path, fake_slack: FakeSlack, fake_taiga: FakeTaiga, fake_anthropic: FakeAnthropic
) -> AsyncIterator[Harness]:
    async with running_harness(tmp_path, fake_slack, fake_taiga, fake_anthropic) as harness:
        yield harness


def model_prompt(h: Harness) -> str:
    """The first user message the fake Anthropic received, as JSON text."""
    return json.dumps(h.anthropic.requests[0].body["messages"][0], ensure_ascii=False)
