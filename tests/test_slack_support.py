"""Unit tests of the Slack layer's small pure pieces: parsing, the
manifest and the loggers."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.services.parsing import asks_for_change, parse_mention, parse_subcommand, project_ref


def test_subcommand_takes_the_first_word_and_keeps_the_following_lines() -> None:
    sub = parse_subcommand("Plan Sprint 6\nWe agreed:\n- export")
    assert (sub.name, sub.rest, sub.body) == ("plan", "Sprint 6", "We agreed:\n- export")


def test_project_reference_accepts_slug_url_and_slack_link() -> None:
    assert project_ref("acme-web") == "acme-web"
    assert project_ref("https://tree.taiga.io/project/acme-web/backlog") == "acme-web"
    assert project_ref("<https://tree.taiga.io/project/acme-web/us/3|link>") == "acme-web"
    assert project_ref("not a slug") is None


def test_mention_with_plan_and_minutes_splits_them() -> None:
    request = parse_mention("<@UBOT> plan Sprint 7\nminutes here", "UBOT")
    assert (request.is_plan, request.sprint, request.minutes) == (True, "Sprint 7", "minutes here")
    assert not parse_mention("<@UBOT> here are the notes", "UBOT").is_plan


@pytest.mark.parametrize(
    ("text", "change"),
    [
        ("merge the two login stories", True),
        ("Drop the analytics story", True),
        ("move task 2 to the API story", True),
        ("also plan the QA work Dana mentioned", True),
        ("thanks, looks good!", False),
        ("no changes needed, thanks", False),
        ("what happens when I approve?", False),
    ],
)
def test_a_mention_asks_for_a_change_by_its_words(text: str, change: bool) -> None:
    assert asks_for_change(text) is change


def test_manifest_asks_for_exactly_the_scopes_the_bot_uses() -> None:
    text = (Path(__file__).parent.parent / "manifest.yml").read_text()
    scopes_section = text.split("bot:\n", 1)[1].split("settings:", 1)[0]
    scopes = {line.split("-", 1)[1].split("#")[0].strip() for line in scopes_section.splitlines()
              if line.strip().startswith("- ")}
    assert scopes == {
        "app_mentions:read", "chat:write", "commands", "channels:history", "groups:history",
        "im:write", "users:read", "files:read",
    }
    assert "socket_mode_enabled: true" in text and "- app_mention" in text


def test_slack_loggers_stay_at_info_so_payloads_are_never_logged() -> None:
    import logging

    from bot.app import quiet_slack_loggers

    for name in ("slack_bolt", "slack_sdk"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    quiet_slack_loggers()
    assert all(
        logging.getLogger(name).getEffectiveLevel() >= logging.INFO
        for name in ("slack_bolt", "slack_sdk", "slack_sdk.web.async_base_client")
    )
