"""Who clicked which plan: a `Decision` from a click on a plan's message, and `decided`: the
click's work with the clicker's linked account, read after the ack."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.context.respond.async_respond import AsyncRespond

from bot.middleware import with_link
from bot.services.core import Services
from bot.services.decisions import Decision
from bot.services.slack_io import tell_by_response_url


def click_decision(
    plan: tuple[str, int | None],
    body: dict[str, Any],
    respond: AsyncRespond,
    context: AsyncBoltContext,
) -> Decision:
    """The click on `plan` (its id and the version the control was shown with); its `link` is
    filled in by `decided` when the work runs."""
    plan_id, version = plan
    return Decision(
        plan_id=plan_id,
        version=version,
        team_id=team_of(body, context),
        user_id=str(context.user_id or (body.get("user") or {}).get("id") or ""),
        link=None,
        tell=tell_by_response_url(respond),
        channel_id=channel_of(body, context),
    )


async def decided(
    services: Services, decision: Decision, work: Callable[[Decision], Awaitable[None]]
) -> None:
    """Run `work` with the clicker's linked account in the decision."""
    await with_link(
        services, decision.team_id, decision.user_id,
        lambda link: work(replace(decision, link=link)),
    )


def team_of(body: dict[str, Any], context: AsyncBoltContext) -> str:
    return str(context.team_id or (body.get("team") or {}).get("id") or "")


def channel_of(body: dict[str, Any], context: AsyncBoltContext) -> str:
    """The channel of the message clicked ("" when the click names none: refused)."""
    return str(context.channel_id or (body.get("channel") or {}).get("id") or "")
