"""Who Slack users are (`users.info`), remembered for a while: a thread of minutes names the
same people again and again, and every plan, refinement and decision shows names.

Profiles are kept for `SLACK_NAME_CACHE_SECONDS` in a cache of at most `NAME_CACHE_SIZE`
users (the least recently used go first), so memory stays bounded however many users a
workspace has; a user Slack does not find is looked up again next time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final

from cachetools import TTLCache
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot import slack_text

logger = logging.getLogger(__name__)

NAME_CACHE_SIZE: Final = 2_000


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


class SlackDirectory:
    """Slack users' profiles through one Slack client, cached for `ttl` seconds of `timer`
    (the runtime's monotonic clock)."""

    def __init__(
        self, slack: AsyncWebClient, *, ttl: float, timer: Callable[[], float],
        size: int = NAME_CACHE_SIZE,
    ) -> None:
        self.slack = slack
        self._cache: TTLCache[str, SlackProfile] = TTLCache(maxsize=size, ttl=ttl, timer=timer)

    def __repr__(self) -> str:
        return f"SlackDirectory({len(self._cache)} cached)"

    async def profiles(self, user_ids: Iterable[str]) -> dict[str, SlackProfile]:
        """The profiles of these users, the ones not cached looked up concurrently, once each
        (unknown ones left out)."""
        wanted = sorted(set(user_ids))
        found = {u: p for u in wanted if (p := self._cache.get(u)) is not None}
        looked_up = await asyncio.gather(*(self._look_up(u) for u in wanted if u not in found))
        for profile in looked_up:
            if profile is not None:
                self._cache[profile.user_id] = found[profile.user_id] = profile
        return found

    async def user_names(self, text: str) -> dict[str, str]:
        """Readable names (display name, else real name, else handle) of the users `text`
        mentions."""
        found = await self.profiles(slack_text.mentioned_user_ids(text))
        return {user_id: profile.readable for user_id, profile in found.items()}

    async def readable(self, text: str) -> str:
        """Slack's wire text decoded for the model and Taiga: mentions as names, entities
        unescaped, links as their text."""
        return slack_text.decode_slack_text(text, await self.user_names(text))

    async def _look_up(self, user_id: str) -> SlackProfile | None:
        try:
            user = (await self.slack.users_info(user=user_id))["user"]
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
