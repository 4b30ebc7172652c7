"""The Previous / Next buttons of the "View full plan" modal (the button itself is a plan
button: `bot.listeners.actions`)."""

from __future__ import annotations

import re
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext

from bot.blocks.actions import ACTION_VIEW_PAGE
from bot.listeners.actions.clicks import team_of
from bot.services.core import Services
from bot.services.full_plan import turn_page


def register(app: AsyncApp) -> None:
    app.action(re.compile(f"^{re.escape(ACTION_VIEW_PAGE)}:"))(page_clicked)



async def page_clicked(
    ack: AsyncAck, action: dict[str, Any], body: dict[str, Any], context: AsyncBoltContext
) -> None:
    await ack()
    services: Services = context["services"]
    view = body.get("view") or {}
    value = str(action.get("value") or "0")
    work = turn_page(
        services, team_id=team_of(body, context), view_id=str(view.get("id") or ""),
        shown=str(view.get("private_metadata") or ""), page=int(value) if value.isdigit() else 0,
    )
    services.spawn(work, name="view-page")
