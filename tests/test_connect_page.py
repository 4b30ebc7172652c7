"""The connect page over HTTP: `/taiga login` sends a private one-time link when PUBLIC_URL is
set; the page's headers, CSRF check, form errors, single use (also when two submissions race),
expiry, and the auth-token path. The browser test is tests/test_connect_browser.py."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from agent.settings import Settings
from bot.connect.routes import MAX_FAILED_ATTEMPTS
from bot.connect.security import CSRF_COOKIE, RedactConnectTokens
from storage import repositories as repo
from tests.peers.connect_page import PUBLIC_URL, connect_link, path_of, submit
from tests.peers.fake_anthropic import FakeAnthropic
from tests.peers.fake_slack import FakeSlack
from tests.peers.fake_taiga import FakeTaiga
from tests.peers.slack_harness import WAIT, Harness, running_harness


@pytest.fixture(name="h")
async def harness_with_public_url(
    tmp_path: Path, fake_slack: FakeSlack, fake_taiga: FakeTaiga, fake_anthropic: FakeAnthropic
) -> AsyncIterator[Harness]:
    async with running_harness(
        tmp_path, fake_slack, fake_taiga, fake_anthropic, public_url=PUBLIC_URL
    ) as harness:
        yield harness


async def alice_link(h: Harness) -> repo.TaigaLinkView | None:
    cipher = h.bot.services.cipher
    return await h.db.run(
        lambda s: repo.get_link(s, cipher=cipher, team_id=h.slack.team_id, user_id=h.alice)
    )


@pytest.mark.anyio
async def test_login_sends_a_private_one_time_link_instead_of_the_modal(h: Harness) -> None:
    _, form = await h.command("login")
    posted = await h.slack.wait_for_response_url(form["response_url"], within=WAIT)
    await h.settle()

    assert posted.body["response_type"] == "ephemeral"
    assert "works once" in str(posted.body["blocks"])
    assert posted.body["blocks"][1]["elements"][0]["url"].startswith(f"{PUBLIC_URL}/connect/")
    assert h.slack.call_count("views.open") == 0


@pytest.mark.anyio
async def test_the_page_is_served_with_strict_security_headers(h: Harness) -> None:
    url = await connect_link(h)

    page = await h.http.get(path_of(url))

    assert page.status_code == 200 and "<form method=\"post\"" in page.text
    headers = page.headers
    assert headers["cache-control"] == "no-store"
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["x-content-type-options"] == "nosniff"
    csp = headers["content-security-policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert "form-action 'self'" in csp and "script-src" not in csp and "<script" not in page.text
    cookie = headers["set-cookie"].lower()
    assert f"{CSRF_COOKIE}=" in cookie and "httponly" in cookie and "samesite=strict" in cookie
    assert "secure" in cookie and f"path={path_of(url).lower()}" in cookie


@pytest.mark.anyio
async def test_a_post_without_the_csrf_cookie_or_from_elsewhere_is_refused(h: Harness) -> None:
    url = await connect_link(h)
    page = await h.http.get(path_of(url))
    login = {"username": "alice", "password": "alice123"}

    no_cookie = await submit(h, url, page, cookie="", **login)
    other_cookie = await submit(h, url, page, cookie="forged.value", **login)
    other_site = await submit(h, url, page, origin="https://evil.example", **login)

    assert [r.status_code for r in (no_cookie, other_cookie, other_site)] == [403, 403, 403]
    assert "could not be verified" in no_cookie.text
    assert await alice_link(h) is None
    linked = await submit(h, url, page, **login)
    assert linked.status_code == 200 and "linked to Taiga as alice" in linked.text


@pytest.mark.anyio
async def test_a_wrong_password_is_shown_and_the_link_still_works(h: Harness) -> None:
    url = await connect_link(h)
    page = await h.http.get(path_of(url))

    wrong = await submit(h, url, page, username="alice", password="not-her-password")
    missing = await submit(h, url, wrong, username="alice")

    assert wrong.status_code == 400
    assert "Taiga did not accept that username and password." in wrong.text
    assert 'value="alice"' in wrong.text and "not-her-password" not in wrong.text
    assert "Enter your Taiga password." in missing.text
    right = await submit(h, url, missing, username="alice", password="alice123")
    assert right.status_code == 200
    link = await alice_link(h)
    assert link is not None and link.taiga_full_name == "Alice Owner"


@pytest.mark.anyio
async def test_too_many_wrong_passwords_use_the_link_up(h: Harness) -> None:
    url = await connect_link(h)
    page = await h.http.get(path_of(url))

    for _ in range(4):
        page = await submit(h, url, page, username="alice", password="guess")
        assert page.status_code == 400
    last = await submit(h, url, page, username="alice", password="guess")

    assert last.status_code == 410 and "Too many failed sign-ins" in last.text
    assert "/taiga login" in last.text
    again = await h.http.get(path_of(url))
    assert again.status_code == 410 and "already used" in again.text


@pytest.mark.anyio
async def test_two_submissions_at_once_link_once(h: Harness) -> None:
    url = await connect_link(h)
    page = await h.http.get(path_of(url))
    login = {"username": "alice", "password": "alice123"}

    answers = await asyncio.gather(submit(h, url, page, **login), submit(h, url, page, **login))

    assert sorted(r.status_code for r in answers) == [200, 410]
    assert any("already used" in r.text for r in answers)
    await h.settle()
    sent = [c.params["text"] for c in h.slack.calls("chat.postMessage")]
    confirmations = [text for text in sent if "You are linked to Taiga" in text]
    assert len(confirmations) == 1


@pytest.mark.anyio
async def test_an_expired_or_unknown_link_says_how_to_get_a_new_one(h: Harness) -> None:
    url = await connect_link(h)
    page = await h.http.get(path_of(url))
    h.wall.offset = timedelta(minutes=10, seconds=1)

    expired = await h.http.get(path_of(url))
    posted = await submit(h, url, page, username="alice", password="alice123")
    unknown = await h.http.get("/connect/not-a-real-token")

    assert expired.status_code == 410 and "This link has expired" in expired.text
    assert posted.status_code == 410 and await alice_link(h) is None
    assert unknown.status_code == 404 and "not valid" in unknown.text
    for answer in (expired, unknown):
        assert "/taiga login" in answer.text and "Connect Taiga" in answer.text
        assert answer.headers["cache-control"] == "no-store"


@pytest.mark.anyio
async def test_an_auth_token_links_too(h: Harness) -> None:
    tokens = h.taiga.login_tokens("alice")
    url = await connect_link(h)
    page = await h.http.get(path_of(url))

    answer = await submit(
        h, url, page, auth_token=tokens["auth_token"], refresh_token=tokens["refresh"]
    )

    assert answer.status_code == 200 and tokens["auth_token"] not in answer.text
    link = await alice_link(h)
    assert link is not None and link.auth_token == tokens["auth_token"]


@pytest.mark.anyio
async def test_without_public_url_there_is_no_connect_page(
    tmp_path: Path, fake_slack: FakeSlack, fake_taiga: FakeTaiga, fake_anthropic: FakeAnthropic
) -> None:
    async with running_harness(tmp_path, fake_slack, fake_taiga, fake_anthropic) as h:
        assert (await h.http.get("/connect/anything")).status_code == 404


def test_access_log_lines_never_show_a_link_token() -> None:
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/connect/s3cr3t-token?x=1", "1.1", 200), None,
    )

    RedactConnectTokens().filter(record)

    assert "s3cr3t" not in record.getMessage() and "/connect/…?x=1" in record.getMessage()


@pytest.mark.anyio
async def test_taiga_being_down_does_not_use_the_link_up(h: Harness) -> None:
    url = await connect_link(h)
    page = await h.http.get(path_of(url))
    h.taiga.fail_next(503, times=1000, path="/auth")

    for _ in range(MAX_FAILED_ATTEMPTS):
        page = await submit(h, url, page, username="alice", password="alice123")
        assert page.status_code == 400 and 'id="error"' in page.text
    h.taiga.clear_faults()
    linked = await submit(h, url, page, username="alice", password="alice123")

    assert linked.status_code == 200 and await alice_link(h) is not None


def test_public_url_is_an_http_address_without_a_trailing_slash() -> None:
    settings = Settings(_env_file=None, public_url="https://planner.example.test/")  # type: ignore[call-arg]

    assert settings.public_url == "https://planner.example.test"
    with pytest.raises(ValidationError, match="PUBLIC_URL must start with https://"):
        Settings(_env_file=None, public_url="planner.example.test")  # type: ignore[call-arg]
