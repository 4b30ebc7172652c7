"""The answer Slack waits for: a burst of commands from a fresh bot asks Slack who the bot is
once, not once per request, and every request is answered."""

from __future__ import annotations

import asyncio

import pytest

from bot.listeners.commands import USAGE
from tests.peers.slack_harness import Harness


@pytest.mark.anyio
async def test_a_burst_of_first_requests_shares_one_auth_test(h: Harness) -> None:
    users = [h.slack.add_user(f"User {n}", display_name=f"user{n}") for n in range(20)]

    answers = await asyncio.gather(*(h.command("help", user=user) for user in users))

    assert [response.status_code for response, _ in answers] == [200] * 20
    assert all(response.text == USAGE for response, _ in answers)
    assert len(h.slack.calls("auth.test")) == 1


@pytest.mark.anyio
async def test_starting_the_bot_asks_who_it_is_before_the_first_request(h: Harness) -> None:
    h.bot.start()
    await h.slack.wait_for("auth.test", within=10.0)

    response, _ = await h.command("help")

    assert response.status_code == 200
    assert len(h.slack.calls("auth.test")) == 1
