"""Talking back to Slack: private replies, posts and updates, threads, readable text."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
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


@dataclass(frozen=True, slots=True)
class SlackProfile:
    """What `users.info` tells about a Slack user."""

    user_id: str
    display_name: str
    real_name: str
    handle: str

    @property
    def readable(self) -> str:
        """Their display name, else real name, else handle."""
        return self.display_name or self.real_name or self.handle or self.user_id

    @property
    def speaker(self) -> str:
        """How a line of the minutes names its author: "Alice Doe (@alice)"."""
        handle = self.display_name or self.handle
        if self.real_name and handle and handle != self.real_name:
            return f"{self.real_name} (@{handle})"
        return self.readable


async def profiles(slack: AsyncWebClient, user_ids: Iterable[str]) -> dict[str, SlackProfile]:
    """The profiles of these users, looked up concurrently, once each (unknown ones left out)."""
    wanted = sorted(set(user_ids))
    found = await asyncio.gather(*(_profile(slack, user_id) for user_id in wanted))
    return {p.user_id: p for p in found if p is not None}


async def user_names(slack: AsyncWebClient, text: str) -> dict[str, str]:
    """Readable names (display name, else real name, else handle) of the users `text` mentions,
    looked up concurrently, once each."""
    found = await profiles(slack, slack_text.mentioned_user_ids(text))
    return {user_id: profile.readable for user_id, profile in found.items()}


async def _profile(slack: AsyncWebClient, user_id: str) -> SlackProfile | None:
    try:
        user = (await slack.users_info(user=user_id))["user"]
    except SlackApiError as error:
        logger.info("users.info %s: %s", user_id, error.response.get("error"))
        return None
    profile = user.get("profile") or {}
    return SlackProfile(
        user_id=user_id,
        display_name=str(profile.get("display_name") or ""),
        real_name=str(user.get("real_name") or profile.get("real_name") or ""),
        handle=str(user.get("name") or ""),
    )


async def readable(slack: AsyncWebClient, text: str) -> str:
    """Slack's wire text decoded for the model and Taiga: mentions as names, entities
    unescaped, links as their text."""
    return slack_text.decode_slack_text(text, await user_names(slack, text))


def esc(text: str) -> str:
    """User-derived text made safe to embed in mrkdwn."""
    return slack_text.escape_mrkdwn(text)
