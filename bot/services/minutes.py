"""The minutes as people wrote them, and the Slack people in them.

A thread's minutes are its messages before the request except this bot's own and Slack's
bookkeeping: people's messages and other apps' (a note-taker's meeting summary), each prefixed
with who wrote it ("Alice Doe (@alice): I'll build the download button"), and the text of
transcripts uploaded to the thread (`.txt`, `.vtt`, `.md`), downloaded with the bot token (the
`files:read` scope). Mentions become names; each Slack user is looked up once. The Slack people
who wrote or are mentioned come with the Taiga account their Slack account is linked to, so the
planner can find owners (`agent.people`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from agent.people import SlackPerson
from bot import slack_text
from bot.services.core import Services
from bot.services.directory import SlackProfile
from bot.services.errors import UserError
from storage import repositories as repo

Json = dict[str, Any]

TRANSCRIPT_SUFFIXES = (".txt", ".vtt", ".md")
# What people and other apps (a note-taker's summary) write; ours are filtered by user id. Every
# other subtype (a deleted parent's `tombstone`, joins, topic changes, edits' `message_changed`,
# …) is Slack's bookkeeping, not minutes.
MINUTES_SUBTYPES = frozenset(
    {None, "thread_broadcast", "file_share", "me_message", "bot_message"}
)
DOWNLOAD_TIMEOUT_SECONDS = 20.0


@dataclass(frozen=True, slots=True)
class Minutes:
    text: str  # decoded plain text
    people: tuple[SlackPerson, ...] = ()


def is_minutes_message(message: Json, bot_user_id: str | None) -> bool:
    """A message by a person or by another app; not this bot's, not Slack's bookkeeping."""
    if bot_user_id and message.get("user") == bot_user_id:
        return False
    return message.get("subtype") in MINUTES_SUBTYPES


def has_content(message: Json) -> bool:
    return bool(str(message.get("text") or "").strip() or transcripts(message))


def transcripts(message: Json) -> list[Json]:
    """The message's uploaded files that are text transcripts."""
    return [
        f for f in message.get("files") or []
        if str(f.get("name") or "").lower().endswith(TRANSCRIPT_SUFFIXES)
    ]


async def read_minutes(
    services: Services, *, team_id: str, messages: Sequence[Json], limit: int
) -> Minutes:
    """The minutes of `messages` (Slack's message shapes; one without a `user` or app is text
    pasted as minutes and gets no speaker). A transcript is read up to just past `limit`
    characters, so a longer one is refused as too long by the caller."""
    found = await services.directory.profiles(_user_ids(messages))
    names = {user_id: profile.readable for user_id, profile in found.items()}
    parts: list[str] = []
    for message in messages:
        text = slack_text.decode_slack_text(str(message.get("text") or ""), names).strip()
        speaker = _speaker(message, found)
        if text:
            parts.append(f"{speaker}: {text}" if speaker else text)
        for file in transcripts(message):
            content = await _download(services, file, limit)
            label = f"{file.get('name')}" + (f", uploaded by {speaker}" if speaker else "")
            parts.append(f"[Transcript {label}]\n{content.strip()}")
    return Minutes("\n\n".join(parts), await _slack_people(services, team_id, found.values()))


def _user_ids(messages: Iterable[Json]) -> set[str]:
    ids: set[str] = set()
    for message in messages:
        if message.get("user") and not message.get("bot_id"):
            ids.add(str(message["user"]))
        ids |= slack_text.mentioned_user_ids(str(message.get("text") or ""))
    return ids


def _speaker(message: Json, found: dict[str, SlackProfile]) -> str | None:
    if message.get("bot_id"):
        app = (message.get("bot_profile") or {}).get("name") or message.get("username") or "An app"
        return f"{app} (app)"
    profile = found.get(str(message.get("user") or ""))
    return profile.speaker if profile else None


async def _slack_people(
    services: Services, team_id: str, found: Iterable[SlackProfile]
) -> tuple[SlackPerson, ...]:
    found = list(found)
    ids = [p.user_id for p in found]
    linked = await services.db.run(
        lambda s: repo.linked_taiga_users(s, team_id=team_id, user_ids=ids)
    )
    return tuple(
        SlackPerson(
            display_name=p.display_name or p.handle,
            real_name=p.real_name,
            taiga_user_id=linked.get(p.user_id),
        )
        for p in found
    )


def _cannot_read(name: str) -> UserError:
    return UserError(
        f"I could not read the transcript {name} in this thread. Paste its text into the thread "
        "instead, or ask an admin to give the app the files:read scope."
    )


async def _download(services: Services, file: Json, limit: int) -> str:
    """The file's text, cut just past `limit` characters; only from Slack's own hosts, since
    the bot token goes with the request."""
    name = str(file.get("name") or "the file")
    url = str(file.get("url_private_download") or file.get("url_private") or "")
    if not _is_slack_url(url, services.settings.slack_api_url):
        raise _cannot_read(name)
    most_bytes = 4 * (limit + 1)  # UTF-8: at least limit + 1 characters when cut
    body = b""
    headers = {"Authorization": f"Bearer {services.slack.token}"}
    try:
        async with (
            httpx.AsyncClient(timeout=DOWNLOAD_TIMEOUT_SECONDS) as http,
            http.stream("GET", url, headers=headers) as response,
        ):
            if response.status_code != 200:  # a redirect to sign in: no files:read
                raise _cannot_read(name)
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) >= most_bytes:
                    break
    except httpx.HTTPError:
        raise _cannot_read(name) from None
    return body[:most_bytes].decode("utf-8", errors="replace")


def _is_slack_url(url: str, api_url: str) -> bool:
    parts, api = urlsplit(url), urlsplit(api_url)
    host = parts.hostname or ""
    same_origin = (parts.scheme, parts.netloc) == (api.scheme, api.netloc)
    slack_host = host == "slack.com" or host.endswith(".slack.com")
    return same_origin or (parts.scheme == "https" and slack_host)
