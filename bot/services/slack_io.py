"""Talking back to Slack: private replies, posts and updates, threads, text made safe."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot import slack_text
from bot.services.errors import UserError

logger = logging.getLogger(__name__)

Tell = Callable[[str], Awaitable[None]]
Respond = Callable[..., Awaitable[Any]]
Json = dict[str, Any]

REPLIES_PAGE = 200
# 10,000 messages: far more than minutes within MAX_MINUTES_CHARS can hold; a cursor that never
# ends (a Slack bug) must not page forever.
MAX_REPLY_PAGES = 50
THREAD_TOO_LONG = (
    "This thread is too long for me to read as minutes. Mention me in a new message with the "
    "minutes in it: @Taiga Planner plan <sprint name>, then the minutes on the next lines."
)


def tell_by_response_url(respond: Respond) -> Tell:
    """Private replies through the command's or action's `response_url` (works even when
    the bot is not in the channel)."""

    async def tell(text: str) -> None:
        if getattr(respond, "response_url", "") is None:  # a forged click: nobody to answer
            logger.warning("no response_url to answer on; reply dropped")
            return
        await respond(text=text, response_type="ephemeral", replace_original=False)

    return tell


def tell_by_ephemeral(
    slack: AsyncWebClient, *, channel: str, user: str, thread_ts: str | None = None
) -> Tell:
    """Private replies with chat.postEphemeral (for events, which carry no response_url)."""

    async def tell(text: str) -> None:
        kwargs: Json = {"thread_ts": thread_ts} if thread_ts else {}
        await slack.chat_postEphemeral(channel=channel, user=user, text=text, **kwargs)

    return tell


async def post(
    slack: AsyncWebClient,
    *,
    channel: str,
    text: str,
    thread_ts: str | None = None,
    blocks: Sequence[Json] | None = None,
) -> str:
    """chat.postMessage; returns the new message's ts."""
    kwargs: Json = {}
    if thread_ts:
        kwargs["thread_ts"] = thread_ts
    if blocks is not None:
        kwargs["blocks"] = list(blocks)
    response = await slack.chat_postMessage(channel=channel, text=text, **kwargs)
    return str(response["ts"])


async def update(
    slack: AsyncWebClient,
    *,
    channel: str,
    ts: str,
    text: str,
    blocks: Sequence[Json] | None = None,
) -> None:
    """chat.update; `blocks=None` replaces any blocks with plain text."""
    await slack.chat_update(channel=channel, ts=ts, text=text, blocks=list(blocks or []))


async def direct_message(slack: AsyncWebClient, *, user: str, text: str) -> None:
    """A DM from the bot (conversations.open needs im:write)."""
    opened = await slack.conversations_open(users=user)
    await slack.chat_postMessage(channel=opened["channel"]["id"], text=text)


async def permalink(slack: AsyncWebClient, *, channel: str, ts: str) -> str | None:
    """A link to one message (chat.getPermalink), or None when Slack will not give one: the
    link back from Taiga is a convenience, never a reason to fail a plan."""
    try:
        response = await slack.chat_getPermalink(channel=channel, message_ts=ts)
    except SlackApiError as error:
        logger.info("chat.getPermalink %s %s: %s", channel, ts, error.response.get("error"))
        return None
    return str(response["permalink"])


async def thread_messages(slack: AsyncWebClient, *, channel: str, thread_ts: str) -> list[Json]:
    """Every message of a thread (conversations.replies, all pages), oldest first."""
    messages: list[Json] = []
    cursor: str | None = None
    for _page in range(MAX_REPLY_PAGES):
        kwargs: Json = {"cursor": cursor} if cursor else {}
        page = await slack.conversations_replies(
            channel=channel, ts=thread_ts, limit=REPLIES_PAGE, **kwargs
        )
        messages.extend(page.get("messages") or [])
        cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
        if not cursor:
            return messages
    raise UserError(THREAD_TOO_LONG)


def esc(text: str) -> str:
    """User-derived text made safe to embed in mrkdwn."""
    return slack_text.escape_mrkdwn(text)
