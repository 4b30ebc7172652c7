"""The pick checkboxes of a proposal: each click leaves items out or puts them back."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.context.respond.async_respond import AsyncRespond

from bot.blocks.actions import ACTION_PICK
from bot.blocks.picking import parse_pick_block_id
from bot.listeners.actions.clicks import click_decision, decided
from bot.services.core import Services
from bot.services.picking import Pick, pick


def register(app: AsyncApp) -> None:
    app.action(re.compile(f"^{re.escape(ACTION_PICK)}:"))(checkbox_clicked)


async def checkbox_clicked(
    ack: AsyncAck,
    action: dict[str, Any],
    body: dict[str, Any],
    respond: AsyncRespond,
    context: AsyncBoltContext,
) -> None:
    await ack()
    services: Services = context["services"]
    block_id = str(action.get("block_id") or "")
    decision = click_decision(parse_pick_block_id(block_id), body, respond, context)
    shown = _shown_ticked(body.get("message") or {}, block_id, str(action.get("action_id")))
    ticked = {str(option.get("value")) for option in action.get("selected_options") or []}
    choice = Pick(
        decision=decision,
        unticked=frozenset(shown - ticked),
        ticked=frozenset(ticked - shown),
    )
    work = decided(
        services, decision, lambda clicked: pick(services, replace(choice, decision=clicked))
    )
    services.spawn(work, name=f"pick-{decision.plan_id}", tell=decision.tell)


def _shown_ticked(message: dict[str, Any], block_id: str, action_id: str) -> set[str]:
    """The item numbers the clicked checkbox group showed ticked (its initial options)."""
    for block in message.get("blocks") or []:
        if block.get("block_id") != block_id:
            continue
        elements = [block.get("accessory") or {}, *(block.get("elements") or [])]
        for element in elements:
            if element.get("action_id") == action_id:
                return {str(o.get("value")) for o in element.get("initial_options") or []}
    return set()
