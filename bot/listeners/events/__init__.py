"""`app_mention`: `@Taiga Planner plan <sprint>`, minutes asked for, or a word about the plan in
the thread (`bot.services.mentions` decides which)."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext

from bot.middleware import with_link
from bot.services import mentions
from bot.services.core import Services
from bot.services.slack_io import tell_by_ephemeral

logger = logging.getLogger(__name__)


def register(app: AsyncApp) -> None:
    app.event("app_mention")(app_mention)


async def app_mention(
    event: dict[str, Any], body: dict[str, Any], context: AsyncBoltContext
) -> None:
    # Events are acknowledged by Bolt before this runs; the work continues in the background.
    if event.get("edited"):
        # Slack sends app_mention again when a message that mentions the bot is edited; fixing
        # a typo must not draft a second plan.
        logger.info("edited mention %s in %s ignored", event.get("ts"), event.get("channel"))
        return
    services: Services = context["services"]
    mention = mentions.Mention(
        team_id=str(context.team_id or body.get("team_id") or ""),
        channel_id=str(event["channel"]),
        user_id=str(event.get("user") or ""),
        ts=str(event["ts"]),
        thread_ts=event.get("thread_ts"),
        text=str(event.get("text") or ""),
        event_id=body.get("event_id"),
    )
    tell = tell_by_ephemeral(
        services.slack, channel=mention.channel_id, user=mention.user_id,
        thread_ts=mention.reply_thread,
    )
    work = with_link(
        services, mention.team_id, mention.user_id,
        lambda link: mentions.answer_mention(
            services, mention, bot_user_id=context.bot_user_id, link=link, tell=tell
        ),
    )
    services.spawn(work, name="mention", tell=tell)
