"""The `/taiga login` modal: sign in at Taiga before acknowledging, so a wrong password is
shown in the modal itself."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext

from bot.blocks.login import LOGIN_CALLBACK_ID
from bot.services import accounts
from bot.services.core import Services


def register(app: AsyncApp) -> None:
    app.view_submission(LOGIN_CALLBACK_ID)(login_submitted)


async def login_submitted(
    ack: AsyncAck, view: dict[str, Any], body: dict[str, Any], context: AsyncBoltContext
) -> None:
    services: Services = context["services"]
    answer = await accounts.submit_login(
        services,
        team_id=str(context.team_id or (body.get("team") or {}).get("id") or ""),
        user_id=str(context.user_id or (body.get("user") or {}).get("id") or ""),
        view=view,
    )
    await ack(**answer)
