"""Offering the connect page in Slack: a private message, or (from App Home) a modal, with a
button that opens the one-time link."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from slack_sdk.models.blocks import ActionsBlock, PlainTextObject
from slack_sdk.models.views import View

from bot.blocks.kit import SlackMessage, button, section, slack_message
from bot.connect.links import LINK_LIFETIME, mint_connect_url
from bot.services.core import Services

ACTION_OPEN_CONNECT = "connect_open"
_MINUTES = int(LINK_LIFETIME.total_seconds() // 60)
_INTRO = (
    "*Connect your Taiga account* on a private page served by this bot: your password goes "
    "straight to Taiga, never through Slack. The link is yours alone, works once and expires "
    f"in {_MINUTES} minutes."
)

Reply = Callable[[SlackMessage], Awaitable[Any]]


def connect_blocks(url: str) -> SlackMessage:
    open_page = button("Connect Taiga", ACTION_OPEN_CONNECT, "connect", style="primary", url=url)
    return slack_message(
        "Connect your Taiga account (a private one-time link)",
        [section(_INTRO), ActionsBlock(elements=[open_page])],
    )


async def offer_connect_link(
    services: Services, *, team_id: str, user_id: str, reply: Reply
) -> None:
    """Mint a link for the user and send it with `reply` (a private message)."""
    url = await mint_connect_url(services, team_id=team_id, user_id=user_id)
    await reply(connect_blocks(url))


async def open_connect_modal(
    services: Services, *, team_id: str, user_id: str, trigger_id: str
) -> None:
    """The Home tab's Connect: a modal holding the link (a Home tab has no private replies)."""
    url = await mint_connect_url(services, team_id=team_id, user_id=user_id)
    view = View(
        type="modal",
        callback_id="connect_link",
        title=PlainTextObject(text="Connect Taiga"),
        close=PlainTextObject(text="Close"),
        blocks=connect_blocks(url).blocks,
    )
    await services.slack.views_open(trigger_id=trigger_id, view=view.to_dict())
