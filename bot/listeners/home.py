"""The App Home tab: `app_home_opened` publishes it; its Connect Taiga, Disconnect and Open plan
buttons; and the connect link's button (a link button: Slack still sends the click)."""

from __future__ import annotations

import re
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext

from bot.blocks.home import ACTION_CONNECT, ACTION_DISCONNECT, ACTION_OPEN_PLAN
from bot.blocks.login import login_view
from bot.connect.offer import ACTION_OPEN_CONNECT, open_connect_modal
from bot.services import accounts
from bot.services.core import Services
from bot.services.errors import log_failure
from bot.services.home import publish_home


def register(app: AsyncApp) -> None:
    app.event("app_home_opened")(home_opened)
    app.action(ACTION_CONNECT)(connect_clicked)
    app.action(ACTION_DISCONNECT)(disconnect_clicked)
    app.action(re.compile(f"^({re.escape(ACTION_OPEN_PLAN)}:|{ACTION_OPEN_CONNECT}$)"))(
        link_followed
    )


async def home_opened(event: dict[str, Any], context: AsyncBoltContext) -> None:
    if event.get("tab") != "home":  # the Messages tab needs nothing from us
        return
    services: Services = context["services"]
    services.spawn_unbounded(
        publish_home(services, team_id=str(context.team_id or ""), user_id=str(event["user"])),
        name="home",
    )


async def connect_clicked(
    ack: AsyncAck, body: dict[str, Any], context: AsyncBoltContext
) -> None:
    """A modal at once (the trigger id lasts 3 s): the connect link, or without PUBLIC_URL the
    login form."""
    await ack()
    services: Services = context["services"]
    trigger_id = str(body["trigger_id"])
    try:
        if services.settings.public_url:
            await open_connect_modal(
                services, team_id=str(context.team_id or ""), user_id=str(context.user_id or ""),
                trigger_id=trigger_id,
            )
        else:
            await services.slack.views_open(trigger_id=trigger_id, view=login_view())
    except Exception as error:
        log_failure("could not open the connect modal from App Home", error)


async def disconnect_clicked(ack: AsyncAck, context: AsyncBoltContext) -> None:
    await ack()
    services: Services = context["services"]
    services.spawn(
        accounts.unlink(
            services, team_id=str(context.team_id or ""), user_id=str(context.user_id or "")
        ),
        name="disconnect",
    )


async def link_followed(ack: AsyncAck) -> None:
    """Slack opened the button's URL in the browser; the app only acknowledges."""
    await ack()
