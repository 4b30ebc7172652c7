"""The secrets audit: full plans run with logging at DEBUG, then every place a secret could
leak is searched for every secret involved (distinctive values, so a hit is a leak):

  secrets:  every Taiga access and refresh token the fake Taiga issued, the Taiga password, the
            Slack bot token and signing secret, the Anthropic key, the Fernet keys, the API key
  searched: every log record (message, arguments, exception text), every call the fake Slack
            received and answered, every response_url post, every request body and header (but
            the key's own) the fake Anthropic received, every response body our app sent
            (the rotated pair `/agent/run` hands back to its caller aside), the SQLite database
            file with its WAL and journal, and `repr()` of the long-lived objects.

The last plan meets a link Taiga refuses, so the failure path (its exceptions and the direct
message) is searched too.

The Slack app-level token is not used in HTTP mode; `tests/test_secrets_repr.py` checks that it
(and the database password) never shows in `repr()`. A click is also checked against the plan's
channel: one from another channel is refused in words and writes nothing."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from storage.crypto import generate_key
from tests.peers.fake_anthropic import FakeAnthropic, message, text, tool_use
from tests.peers.fake_slack import FakeSlack
from tests.peers.fake_taiga import ALL_PERMISSIONS, PROJECT_ID, FakeTaiga
from tests.peers.slack_harness import WAIT, Harness, block_text, running_harness, story_turn

PASSWORD = "Carol-pa55word-7f3e9b1d"
SIGNING_SECRET = "audit-signing-secret-5c1a9e77d2"
ANTHROPIC_KEY = "sk-ant-audit-key-0b8d4f62a9"
API_KEY = "audit-api-key-93e1c7aa40"
FERNET_KEYS = [generate_key(), generate_key()]
MINUTES = "Carol: ship the audit log export."
KEY_HEADERS = frozenset({"x-api-key", "authorization"})  # where the Anthropic key belongs


@pytest.fixture
async def h(
    tmp_path: Path, fake_slack: FakeSlack, fake_taiga: FakeTaiga, fake_anthropic: FakeAnthropic
) -> AsyncIterator[Harness]:
    fake_taiga.add_user("carol", PASSWORD, full_name="Carol Poe")
    fake_taiga.add_role(PROJECT_ID, "Writer", ALL_PERMISSIONS)
    fake_taiga.add_member(PROJECT_ID, "carol", "Writer")
    async with running_harness(
        tmp_path, fake_slack, fake_taiga, fake_anthropic, slack_signing_secret=SIGNING_SECRET,
        anthropic_api_key=ANTHROPIC_KEY, agent_api_keys=[API_KEY],
        token_encryption_keys=FERNET_KEYS,
    ) as harness:
        yield harness


class Responses:
    """Every response body our app sent to the harness's client; from `/agent/run`, without
    the rotated token pair it hands back to its caller on purpose."""

    def __init__(self) -> None:
        self.bodies: list[str] = []

    async def __call__(self, response: httpx.Response) -> None:
        await response.aread()
        if response.request.url.path == "/agent/run":
            body = response.json()
            body.pop("tokens", None)
            self.bodies.append(json.dumps(body))
        else:
            self.bodies.append(response.text)


@pytest.mark.anyio
async def test_no_secret_leaks_anywhere_through_login_plans_refreshes_and_the_api(
    h: Harness, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    responses = Responses()
    h.http.event_hooks["response"].append(responses)
    await h.set_project()
    carol = h.slack.add_user("Carol Poe", display_name="carol")

    await log_in_with_the_modal(h, carol)
    await plan_and_approve(h, carol, refresh_first=False)
    await plan_and_approve(h, carol, refresh_first=True)
    await agent_run_with_a_refresh(h)
    await plan_with_a_dead_link(h, carol)
    await h.settle()

    secrets = [
        *h.taiga.issued_tokens(), PASSWORD, h.slack.bot_token, SIGNING_SECRET, ANTHROPIC_KEY,
        API_KEY, *FERNET_KEYS,
    ]
    assert len(h.taiga.issued_tokens()) >= 6  # login, two Slack refreshes, the API's pair
    places = {
        "log": log_lines(caplog.records),
        "slack": slack_traffic(h),
        "anthropic": anthropic_traffic(h),
        "responses": responses.bodies,
        "database": database_files(tmp_path),
        "repr": long_lived_reprs(h),
    }
    leaks = [
        (place, secret[:12])
        for place, texts in places.items() for text in texts for secret in secrets
        if secret in text
    ]
    assert leaks == []
    assert all(places.values()), {place: len(texts) for place, texts in places.items()}


@pytest.mark.anyio
async def test_a_click_from_another_channel_is_refused_in_words_and_writes_nothing(
    h: Harness,
) -> None:
    await h.link(h.alice, "alice")
    await h.set_project()
    other = h.slack.add_channel("elsewhere")
    h.anthropic.script(story_turn(("Export the audit log", ["Write the exporter"])))
    await h.command(f"plan Sprint 6\n{MINUTES}")
    proposal_ts = await h.proposal_ts()
    payload = h.slack.block_action_payload(h.channel, proposal_ts, "plan_approve", user=h.alice)
    payload["channel"] = {"id": other, "name": "elsewhere"}
    payload["container"]["channel_id"] = other

    await h.payload(payload)

    told = await h.slack.wait_for_response_url(payload["response_url"], within=WAIT)
    assert "belongs to a plan in another channel" in told.body["text"]
    await h.settle()
    assert h.taiga.requests_to("POST", "/userstories") == []
    assert (await h.plans())[0].state == "proposed"


# ------------------------------------------------------------------------------- the runs


async def log_in_with_the_modal(h: Harness, user: str) -> None:
    await h.command("login", user=user)
    opened = await h.slack.wait_for("views.open", within=WAIT)
    payload = h.slack.view_submission_payload(
        opened.response["view"]["id"], user=user,
        values={"username": {"username": "carol"}, "password": {"password": PASSWORD}},
    )
    answer = await h.payload(payload)
    assert answer.json()["response_action"] == "update"


async def plan_and_approve(h: Harness, user: str, *, refresh_first: bool) -> None:
    h.anthropic.script(story_turn((f"Export the audit log {refresh_first}", ["Write it"])))
    await h.command(f"plan Sprint 6\n{MINUTES} {refresh_first}", user=user)
    params = await h.wait_update(lambda p: "plan_approve" in json.dumps(p.get("blocks")),
                                 count=2 if refresh_first else 1)
    if refresh_first:
        h.taiga.expire_access_tokens("carol")  # Approve has to renew the stored pair
    await h.click("plan_approve", str(params["ts"]), user=user)
    await h.wait_update(lambda p: p["ts"] == params["ts"] and
                        "Sprint plan applied" in block_text(p))


async def plan_with_a_dead_link(h: Harness, user: str) -> None:
    """Taiga refuses both tokens: the failure path (exceptions, the DM) is searched too."""
    h.taiga.expire_access_tokens("carol")
    h.taiga.expire_refresh_tokens("carol")
    await h.command(f"plan Sprint 6\n{MINUTES} again", user=user)
    await h.slack.wait_for(
        "chat.postMessage", lambda c: c.params["channel"].startswith("D"), within=WAIT
    )


async def agent_run_with_a_refresh(h: Harness) -> None:
    tokens = h.taiga.login_tokens("carol")
    h.taiga.expire_access_tokens("carol")
    h.anthropic.script(message(text("Planned."), tool_use(
        "taiga_create_user_story", {"subject": "Audit log API", "tasks": []}
    )))
    response = await h.http.post(
        "/agent/run", headers={"Authorization": f"Bearer {API_KEY}"},
        json={"project_id": PROJECT_ID, "auth_token": tokens["auth_token"],
              "refresh": tokens["refresh"], "prompt": f"{MINUTES}\n\nPlan Sprint 6."},
    )
    assert response.status_code == 200, response.text
    assert response.json()["tokens"]["auth_token"] in h.taiga.issued_tokens()  # its new pair


# ------------------------------------------------------------------------ where to look


def log_lines(records: list[logging.LogRecord]) -> list[str]:
    formatter = logging.Formatter()
    lines = []
    for record in records:
        lines.append(f"{record.getMessage()} {record.args!r}")
        if record.exc_info:
            lines.append(formatter.formatException(record.exc_info))
            lines.append(repr(record.exc_info[1]))
    return lines


def slack_traffic(h: Harness) -> list[str]:
    calls = [json.dumps([c.params, c.response], default=str) for c in h.slack.calls()]
    return calls + [json.dumps(p.body) for p in h.slack.response_url_posts()]


def anthropic_traffic(h: Harness) -> list[str]:
    return [
        json.dumps([r.path, r.body, {k: v for k, v in r.headers.items() if k not in KEY_HEADERS}])
        for r in h.anthropic.requests
    ]


def database_files(tmp_path: Path) -> list[str]:
    files = [tmp_path / f"planner.db{suffix}" for suffix in ("", "-wal", "-journal", "-shm")]
    return [path.read_bytes().decode("latin-1") for path in files if path.exists()]


def long_lived_reprs(h: Harness) -> list[str]:
    services = h.bot.services
    runtime = services.runtime
    holders: list[object] = [
        h.settings, runtime, services, h.bot, h.bot.recovery, runtime.cipher, runtime.refresher,
        runtime.taiga, runtime.db, runtime.anthropic, services.slack, h.bot.app,
    ]
    return [f"{holder!r} {holder}" for holder in holders]
