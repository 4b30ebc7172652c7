"""Every way of starting the bot checks itself and says what is wrong in one line.

Each test runs a real entry point (`python -m bot`, `uvicorn bot.server:api`) as a process
against the fake Slack on loopback (SLACK_API_URL), and reads its exit code and stderr."""

from __future__ import annotations

import signal
import socket
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from storage.db import head_revision
from tests.peers.entry_points import (
    BOT,
    UVICORN,
    assert_one_line,
    finish,
    settings_for,
    start,
    terminated,
)
from tests.peers.fake_slack import FakeSlack
from tests.peers.ports import free_port

ENTRY_POINTS = pytest.mark.parametrize("entry", [BOT, UVICORN], ids=["python -m bot", "uvicorn"])


def settings_code(entry: tuple[str, ...]) -> int:
    """A bad setting: `python -m bot` exits 2 (like the agent CLI), uvicorn 3 (its start-up
    failure code). Failures found once serving starts (database, Slack) exit 3 under both."""
    return 2 if entry == BOT else 3


@ENTRY_POINTS
def test_nothing_configured_names_the_first_missing_setting(
    entry: tuple[str, ...], tmp_path: Path
) -> None:
    code, stderr = finish(entry, tmp_path, {})

    assert code == settings_code(entry)
    assert_one_line(stderr, "error: SLACK_BOT_TOKEN is not set (Slack app > OAuth & Permissions")


def test_half_configured_slack_refuses_to_start_under_uvicorn_too(
    tmp_path: Path, fake_slack: FakeSlack
) -> None:
    settings = settings_for(fake_slack, tmp_path, SLACK_APP_TOKEN="")

    code, stderr = finish(UVICORN, tmp_path, settings)

    assert code == 3
    assert_one_line(stderr, "SLACK_APP_TOKEN is not set")
    assert "SLACK_SIGNING_SECRET" in stderr  # the other way: HTTP mode


def test_a_token_of_the_wrong_kind_is_named_without_echoing_it(
    tmp_path: Path, fake_slack: FakeSlack
) -> None:
    settings = settings_for(fake_slack, tmp_path, SLACK_BOT_TOKEN="xoxp-user-secret-123")

    code, stderr = finish(BOT, tmp_path, settings)

    assert code == 2
    assert_one_line(stderr, "SLACK_BOT_TOKEN is a user token, not a bot token (xoxb-…)")
    assert "secret-123" not in stderr
    assert fake_slack.calls() == []


@ENTRY_POINTS
def test_a_bot_token_slack_refuses_stops_with_the_setting_named(
    entry: tuple[str, ...], tmp_path: Path, fake_slack: FakeSlack
) -> None:
    settings = settings_for(fake_slack, tmp_path, SLACK_BOT_TOKEN="xoxb-revoked")

    code, stderr = finish(entry, tmp_path, settings)

    assert code == 3
    assert_one_line(stderr, "error: SLACK_BOT_TOKEN was refused by Slack (invalid_auth)")
    assert [c.method for c in fake_slack.calls()] == ["auth.test"]  # once, never retried


def test_an_app_token_slack_refuses_stops_with_the_setting_named(
    tmp_path: Path, fake_slack: FakeSlack
) -> None:
    settings = settings_for(fake_slack, tmp_path, SLACK_APP_TOKEN="xapp-1-revoked")

    code, stderr = finish(UVICORN, tmp_path, settings)

    assert code == 3
    assert_one_line(stderr, "error: SLACK_APP_TOKEN was refused by Slack (invalid_auth)")
    assert fake_slack.call_count("apps.connections.open") == 1


def test_unreachable_slack_is_retried_a_few_times_one_line_each(
    tmp_path: Path, fake_slack: FakeSlack
) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}/api/"
    settings = settings_for(fake_slack, tmp_path, SLACK_API_URL=nowhere)

    code, stderr = finish(BOT, tmp_path, settings)

    assert code == 3
    assert "Traceback" not in stderr and "Unclosed" not in stderr
    retries = [line for line in stderr.splitlines() if "Slack is unreachable (" in line]
    assert [line.split("attempt ")[1][:6] for line in retries] == ["1 of 4", "2 of 4", "3 of 4"]
    [final] = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert f"Slack is unreachable at {nowhere}" in final and "SLACK_API_URL" in final


def test_port_abc_names_the_setting(tmp_path: Path, fake_slack: FakeSlack) -> None:
    code, stderr = finish(BOT, tmp_path, settings_for(fake_slack, tmp_path) | {"PORT": "abc"})

    assert code == 2
    assert_one_line(stderr, "error: Invalid setting PORT: Input should be a valid integer")


def test_an_unreachable_postgresql_names_database_url(
    tmp_path: Path, fake_slack: FakeSlack
) -> None:
    url = f"postgresql://planner@127.0.0.1:{free_port()}/planner"

    code, stderr = finish(UVICORN, tmp_path, settings_for(fake_slack, tmp_path, DATABASE_URL=url))

    assert code == 3
    assert_one_line(stderr, "error: DATABASE_URL: cannot reach postgresql at 127.0.0.1:")
    assert "start the database or fix DATABASE_URL" in stderr


def test_the_procfile_release_refuses_sqlite_on_a_dyno(
    tmp_path: Path, fake_slack: FakeSlack
) -> None:
    settings = settings_for(fake_slack, tmp_path) | {"DYNO": "release.1"}

    code, stderr = finish((*BOT, "migrate"), tmp_path, settings)

    assert code == 2
    assert_one_line(stderr, "error: DATABASE_URL is SQLite, but a dyno's disk is wiped")
    assert not (tmp_path / "planner.db").exists()


def test_a_port_in_use_is_named_before_anything_connects(
    tmp_path: Path, fake_slack: FakeSlack
) -> None:
    with socket.create_server(("0.0.0.0", 0)) as taken:
        port = taken.getsockname()[1]
        settings = settings_for(fake_slack, tmp_path) | {"PORT": str(port)}

        code, stderr = finish(BOT, tmp_path, settings)

    assert code == 2
    assert_one_line(stderr, f"error: PORT {port} is already in use")
    assert fake_slack.calls() == []


@ENTRY_POINTS
def test_sigterm_while_slack_is_still_being_reached_stops_cleanly(
    entry: tuple[str, ...], tmp_path: Path, fake_slack: FakeSlack
) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}/api/"
    running = start(entry, tmp_path, settings_for(fake_slack, tmp_path, SLACK_API_URL=nowhere))
    try:
        running.wait_for(lambda err: "attempt 1 of 4" in err, "a first retry")

        code = running.stop(signal.SIGTERM)
    finally:
        running.kill()

    assert terminated(code), running.stderr
    assert "Traceback" not in running.stderr and "Unclosed" not in running.stderr
    assert "attempt 2 of 4" not in running.stderr  # stopped at once, not after the retries


def serving(entry: tuple[str, ...]) -> Callable[[str], bool]:
    """Started and taking connections: `python -m bot` binds its port before start-up, the
    uvicorn command only after it."""
    if entry == UVICORN:
        return lambda err: "Uvicorn running on" in err
    return lambda err: "Application startup complete" in err


@ENTRY_POINTS
def test_socket_mode_starts_from_either_entry_point_and_stops_cleanly(
    entry: tuple[str, ...], tmp_path: Path, fake_slack: FakeSlack
) -> None:
    running = start(entry, tmp_path, settings_for(fake_slack, tmp_path))
    try:
        running.wait_for(serving(entry), "start-up")
        with httpx.Client(base_url=f"http://127.0.0.1:{running.port}", timeout=30) as http:
            health = http.get("/health")
            slack_events = http.post("/slack/events", content=b"{}")

        code = running.stop(signal.SIGINT if entry == BOT else signal.SIGTERM)
    finally:
        running.kill()

    assert health.status_code == 200, health.text
    assert health.json()["slack"] == "socket connected"
    assert health.json()["schema_revision"] == head_revision()  # migrated at start-up
    assert slack_events.status_code == 404  # Socket Mode: Slack uses the websocket
    assert code in (0, 130, -signal.SIGTERM), running.stderr
    assert "Traceback" not in running.stderr and "Unclosed" not in running.stderr
    assert [c.method for c in fake_slack.calls()] == ["auth.test", "apps.connections.open"]


def test_uvicorn_in_http_mode_verifies_slack_requests(
    tmp_path: Path, fake_slack: FakeSlack
) -> None:
    settings = settings_for(fake_slack, tmp_path, SLACK_APP_TOKEN="", SLACK_SIGNING_SECRET="s3")
    running = start(UVICORN, tmp_path, settings)
    try:
        running.wait_for(serving(UVICORN), "start-up")
        with httpx.Client(base_url=f"http://127.0.0.1:{running.port}", timeout=30) as http:
            health = http.get("/health")
            unsigned = http.post("/slack/events", content=b"{}")
        code = running.stop()
    finally:
        running.kill()

    assert health.json()["slack"] == "http"
    assert unsigned.status_code == 401  # Bolt's signature check, not a 404 or a 500
    assert terminated(code)
