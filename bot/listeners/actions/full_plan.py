"""The "View full plan" button and the Previous / Next buttons of its modal."""

from __future__ import annotations

import re
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.context.respond.async_respond import AsyncRespond

from bot.blocks.actions import ACTION_VIEW, ACTION_VIEW_PAGE, parse_plan_ref
from bot.listeners.actions.clicks import click_decision, team_of
from bot.services.core import Services
from bot.services.full_plan import open_full_plan, turn_page


def register(app: AsyncApp) -> None:
    app.action(ACTION_VIEW)(view_clicked)
    app.action(re.compile(f"^{re.escape(ACTION_VIEW_PAGE)}:"))(page_clicked)


async def view_clicked(
    ack: AsyncAck,
    action: dict[str, Any],
    body: dict[str, Any],
    respond: AsyncRespond,
    context: AsyncBoltContext,
) -> None:
    await ack()
    services: Services = context["services"]
    decision = click_decision(
        parse_plan_ref(str(action.get("value") or "")), body, respond, context
    )
    work = open_full_plan(services, decision, str(body.get("trigger_id") or ""))
    services.spawn(work, name=f"view-{decision.plan_id}", tell=decision.tell)


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
