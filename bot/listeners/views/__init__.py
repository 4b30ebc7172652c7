"""The modals: `/taiga login` (signs in at Taiga before acknowledging, so a wrong password is
shown in the modal itself) and a proposal's Edit (checked before acknowledging, so a field error
is shown on its field)."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext

from bot.blocks.edit import EDIT_CALLBACK_ID
from bot.blocks.login import LOGIN_CALLBACK_ID
from bot.services import accounts, editing
from bot.services.core import Services


def register(app: AsyncApp) -> None:
    app.view_submission(LOGIN_CALLBACK_ID)(login_submitted)
    app.view_submission(EDIT_CALLBACK_ID)(edit_submitted)


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


async def edit_submitted(
    ack: AsyncAck, view: dict[str, Any], body: dict[str, Any], context: AsyncBoltContext
) -> None:
    answer = await editing.submit_edit(
        context["services"],
        team_id=str(context.team_id or (body.get("team") or {}).get("id") or ""),
        user_id=str(context.user_id or (body.get("user") or {}).get("id") or ""),
        view=view,
    )
    await ack(**answer)
