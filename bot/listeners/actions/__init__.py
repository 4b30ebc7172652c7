"""The proposal's buttons: Approve, Edit, Reject, and Retry on a partly applied plan."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.context.respond.async_respond import AsyncRespond

from bot.blocks import ACTION_APPROVE, ACTION_REJECT, ACTION_RETRY
from bot.blocks.actions import ACTION_EDIT, parse_plan_ref
from bot.services import decisions, editing
from bot.services.core import Services
from bot.services.slack_io import tell_by_response_url

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


def _decision(
    action: dict[str, Any], body: dict[str, Any], respond: AsyncRespond, context: AsyncBoltContext
) -> decisions.Decision:
    plan_id, version = parse_plan_ref(str(action.get("value") or ""))
    return decisions.Decision(
        plan_id=plan_id,
        version=version,
        team_id=str(context.team_id or (body.get("team") or {}).get("id") or ""),
        user_id=str(context.user_id or (body.get("user") or {}).get("id") or ""),
        link=context.get("taiga_link"),
        tell=tell_by_response_url(respond),
    )


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
    decision = _decision(action, body, respond, context)
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
    decision = _decision(action, body, respond, context)
    services.spawn(
        editing.open_editor(services, decision, trigger_id=str(body.get("trigger_id") or "")),
        name=f"edit-{decision.plan_id}", tell=decision.tell,
    )
