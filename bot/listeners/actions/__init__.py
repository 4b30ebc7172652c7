"""The buttons on a plan's message: Approve, View full plan, Edit, Reject, Retry on a partly
applied plan and Undo on an applied one; each click becomes a `Decision` and its work runs after
the ack. The pick checkboxes and the full-plan modal's pages are in their own modules."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.context.respond.async_respond import AsyncRespond

from bot.blocks.actions import (
    ACTION_APPROVE,
    ACTION_EDIT,
    ACTION_REJECT,
    ACTION_RETRY,
    ACTION_UNDO,
    ACTION_VIEW,
    parse_plan_ref,
)
from bot.listeners.actions import full_plan, picking
from bot.listeners.actions.clicks import click_decision, decided
from bot.services import decisions, editing, undoing
from bot.services.core import Services
from bot.services.full_plan import open_full_plan

# What a click starts, given the services, the click and its trigger_id (for a modal).
ButtonWork = Callable[[Services, decisions.Decision, str], Coroutine[Any, Any, None]]

BUTTONS: dict[str, ButtonWork] = {
    ACTION_APPROVE: lambda services, decision, _: decisions.approve(services, decision),
    ACTION_REJECT: lambda services, decision, _: decisions.reject(services, decision),
    ACTION_RETRY: lambda services, decision, _: decisions.retry(services, decision),
    ACTION_EDIT: lambda services, decision, trigger: editing.open_editor(
        services, decision, trigger_id=trigger
    ),
    ACTION_VIEW: open_full_plan,
    ACTION_UNDO: lambda services, decision, _: undoing.undo(services, decision),
}


def register(app: AsyncApp) -> None:
    for action_id in BUTTONS:
        app.action(action_id)(button_clicked)
    picking.register(app)
    full_plan.register(app)


async def button_clicked(
    ack: AsyncAck,
    action: dict[str, Any],
    body: dict[str, Any],
    respond: AsyncRespond,
    context: AsyncBoltContext,
) -> None:
    await ack()
    services: Services = context["services"]
    action_id = str(action["action_id"])
    decision = click_decision(
        parse_plan_ref(str(action.get("value") or "")), body, respond, context
    )
    trigger_id = str(body.get("trigger_id") or "")
    work = decided(
        services, decision, lambda clicked: BUTTONS[action_id](services, clicked, trigger_id)
    )
    services.spawn(work, name=f"{action_id}-{decision.plan_id}", tell=decision.tell)
