"""The proposal's controls: Approve, Edit, Reject, and Retry on a partly applied plan here; the
pick checkboxes and the full-plan modal in their own modules."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.context.respond.async_respond import AsyncRespond

from bot.blocks import ACTION_APPROVE, ACTION_REJECT, ACTION_RETRY
from bot.blocks.actions import ACTION_EDIT, parse_plan_ref
from bot.listeners.actions import full_plan, picking
from bot.listeners.actions.clicks import click_decision
from bot.services import decisions, editing
from bot.services.core import Services

Decide = Callable[[Services, decisions.Decision], Coroutine[Any, Any, None]]


DECISIONS: dict[str, Decide] = {
    ACTION_APPROVE: decisions.approve,
    ACTION_REJECT: decisions.reject,
    ACTION_RETRY: decisions.retry,
}


def register(app: AsyncApp) -> None:
    for action_id in DECISIONS:
        app.action(action_id)(button_clicked)
    app.action(ACTION_EDIT)(edit_clicked)
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
    decide = DECISIONS[action["action_id"]]
    decision = click_decision(
        parse_plan_ref(str(action.get("value") or "")), body, respond, context
    )
    services.spawn(
        decide(services, decision), name=f"{decide.__name__}-{decision.plan_id}",
        tell=decision.tell,
    )


async def edit_clicked(
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
    services.spawn(
        editing.open_editor(services, decision, trigger_id=str(body.get("trigger_id") or "")),
        name=f"edit-{decision.plan_id}", tell=decision.tell,
    )
