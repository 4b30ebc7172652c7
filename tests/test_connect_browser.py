"""The connect page in a real headless Chromium (Debian's chromium + chromium-driver, driven by
Selenium): the link works once, a second use and an expired link are refused, a wrong password
is shown on the page, and afterwards the database, the logs and every Slack message hold
neither the password nor a plaintext token.

The bot is served by uvicorn on 127.0.0.1 (PUBLIC_URL points there); the browser runs in a
worker thread so the event loop keeps serving it. `SAVE_SCREENSHOTS=1` refreshes
docs/connect-page.png from this test.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import closing
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

import anyio
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.wait import WebDriverWait

from bot.app import SLACK_LOGGERS
from storage import repositories as repo
from tests.peers.connect_page import connect_link
from tests.peers.fake_anthropic import FakeAnthropic
from tests.peers.fake_slack import FakeSlack
from tests.peers.fake_taiga import PASSWORDS, FakeTaiga
from tests.peers.served import serving
from tests.peers.slack_harness import WAIT, Harness, running_harness

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "connect-page.png"
WRONG_PASSWORD = "Wr0ng-Passw0rd!"
T = TypeVar("T")

pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="Chromium and chromedriver are not installed (apt-get install -y chromium "
    "chromium-driver; .ci/run installs them)",
)


@pytest.fixture(name="h")
async def served_harness(
    tmp_path: Path, fake_slack: FakeSlack, fake_taiga: FakeTaiga, fake_anthropic: FakeAnthropic
) -> AsyncIterator[Harness]:
    """The harness with its app served by uvicorn on a loopback port that is its PUBLIC_URL."""
    sock = socket.create_server(("127.0.0.1", 0))
    public_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    async with (
        running_harness(
            tmp_path, fake_slack, fake_taiga, fake_anthropic, public_url=public_url
        ) as harness,
        serving(harness.api, sock=sock, access_log=True),  # the log's redaction is checked
    ):
        yield harness


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    assert CHROMIUM is not None
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
        "--window-size=760,900", f"--user-data-dir={tmp_path / 'chromium'}",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(WAIT * 3)
    try:
        yield driver
    finally:
        driver.quit()


async def in_browser(step: Callable[[], T]) -> T:
    """Run a blocking browser step in a worker thread, so the server keeps answering."""
    return await anyio.to_thread.run_sync(step)


def shown(driver: WebDriver, element_id: str) -> str:
    """The text of the element `element_id`, once the page shows it (bounded wait)."""
    WebDriverWait(driver, WAIT * 3).until(
        expected_conditions.presence_of_element_located((By.ID, element_id))
    )
    return driver.find_element(By.ID, element_id).text


def sign_in(driver: WebDriver, username: str, password: str) -> None:
    field = driver.find_element(By.ID, "username")
    field.clear()
    field.send_keys(username)
    driver.find_element(By.ID, "password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()


def database_text(h: Harness) -> str:
    """Every row of every table in the bot's SQLite file, as text."""
    path = h.settings.database_url.get_secret_value().removeprefix("sqlite:///")
    with closing(sqlite3.connect(path)) as connection:
        tables = [row[0] for row in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'"
        )]
        return "\n".join(
            repr(row) for table in tables for row in connection.execute(f'SELECT * FROM "{table}"')
        )


def slack_text(h: Harness) -> str:
    calls = [{"method": c.method, "params": c.params} for c in h.slack.calls()]
    posts = [p.body for p in h.slack.response_url_posts()]
    return json.dumps([calls, posts], ensure_ascii=False)


@pytest.mark.anyio
async def test_the_link_works_once_and_no_secret_is_kept_anywhere(
    h: Harness, browser: WebDriver, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    for chatty in ("selenium", "urllib3"):  # the test's own browser driving, not the bot's logs
        caplog.set_level(logging.WARNING, logger=chatty)
    for name in SLACK_LOGGERS:  # as start-up leaves them (`quiet_slack_loggers`)
        caplog.set_level(logging.INFO, logger=name)
    caplog.set_level(logging.DEBUG)  # last: it also sets the capturing handler's level
    url = await connect_link(h)
    token = url.rsplit("/", 1)[1]

    def open_form() -> str:
        browser.get(url)
        title = browser.title
        browser.find_element(By.ID, "username").send_keys("alice")
        browser.save_screenshot(str(tmp_path / "connect-page.png"))
        return title

    assert "Connect Taiga" in await in_browser(open_form)
    if os.environ.get("SAVE_SCREENSHOTS"):
        shutil.copyfile(tmp_path / "connect-page.png", SCREENSHOT)

    def wrong_password() -> tuple[str, str]:
        sign_in(browser, "alice", WRONG_PASSWORD)
        error = shown(browser, "error")
        return error, browser.find_element(By.ID, "password").get_attribute("value") or ""

    error, password_left = await in_browser(wrong_password)
    assert error == "Taiga did not accept that username and password."
    assert password_left == ""

    def right_password() -> str:
        sign_in(browser, "alice", PASSWORDS["alice"])
        return shown(browser, "outcome")

    assert "linked to Taiga as alice" in await in_browser(right_password)

    def second_use() -> str:
        browser.get(url)
        return shown(browser, "outcome")

    refused = await in_browser(second_use)
    assert "already used" in refused and "/taiga login" in refused

    confirmed = await h.slack.wait_for(
        "chat.postMessage", lambda c: "You are linked to Taiga" in c.params["text"], within=WAIT
    )
    assert confirmed.ok and confirmed.params["channel"].startswith("D")
    home = await h.slack.wait_for("views.publish", within=WAIT)
    assert "Alice Owner" in json.dumps(home.params["view"])
    await h.settle()

    cipher = h.bot.services.cipher
    link = await h.db.run(
        lambda s: repo.get_link(s, cipher=cipher, team_id=h.slack.team_id, user_id=h.alice)
    )
    assert link is not None and link.refresh_token
    secrets = [PASSWORDS["alice"], WRONG_PASSWORD, link.auth_token, link.refresh_token]
    logs = caplog.text + "\n".join(r.getMessage() for r in caplog.records)
    assert "/connect/…" in logs  # uvicorn's access log was captured, the link's token cut out
    places = {"database": database_text(h), "logs": logs, "Slack": slack_text(h)}
    for where, text in places.items():
        for secret in secrets:
            assert secret not in text, f"a password or Taiga token is in the {where}"
    # The link itself is only in the private Slack message that carries it.
    assert token not in places["database"] and token not in logs


@pytest.mark.anyio
async def test_an_expired_link_is_refused_in_the_browser(h: Harness, browser: WebDriver) -> None:
    url = await connect_link(h)
    h.wall.offset = timedelta(minutes=11)

    def open_expired() -> str:
        browser.get(url)
        return shown(browser, "outcome")

    refused = await in_browser(open_expired)

    assert "This link has expired" in refused and "/taiga login" in refused
