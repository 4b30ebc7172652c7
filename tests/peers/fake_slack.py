"""A fake Slack Web API: a real aiohttp server on 127.0.0.1, in a background thread.

Point `slack_sdk`'s `AsyncWebClient(base_url=fake.api_url)` (or `SLACK_API_URL`) at it. It answers
the methods the bot uses with Slack's response shapes and refusals, keeps channels, threads,
users and views in memory, and records every call so tests can assert what was sent.

    async def test_posts(fake_slack: FakeSlack) -> None:
        channel = fake_slack.add_channel("planning")
        client = AsyncWebClient(token=fake_slack.bot_token, base_url=fake_slack.api_url)
        await client.chat_postMessage(channel=channel, text="hi")
        assert fake_slack.call_count("chat.postMessage") == 1

Refusals (HTTP 200, `ok: false`, like Slack): `invalid_auth` (bad or missing token),
`channel_not_found`, `not_in_channel` (see `add_channel(is_member=False)`), `invalid_blocks`,
`msg_too_long`, `msg_blocks_too_long`, `no_text`, `message_not_found`, `cant_update_message`,
`thread_not_found`, `user_not_found`, `invalid_cursor`, `expired_trigger_id`, `not_found`,
`hash_conflict`.
On demand: `rate_limit(method, times)` answers HTTP 429 with `Retry-After`,
`fail_next(method, error)` answers any error (`clear_failures()` forgets those not yet used),
and `hold(method)` keeps calls of a method unanswered until `release(method)` (a slow Slack).

Chat streaming (`chat.startStream` / `chat.appendStream` / `chat.stopStream`) answers with
Slack's shapes: start → `{channel, ts}` of a new thread reply in `streaming_state`
"in_progress" (outside a DM it needs `recipient_user_id` and `recipient_team_id`), append →
`{channel, ts}`, stop → `{channel, ts, message}` with the blocks under the streamed content.
Chunks (`markdown_text`, `task_update` with `pending|in_progress|complete|error`, …) are
validated and kept on the message (`streamed_chunks(channel, ts)`). A stopped stream answers
`message_not_in_streaming_state`. `refuse_streaming(error)` makes Slack refuse, per test:
`unknown_method` (an older workspace: all three methods), `method_not_supported_for_channel_type`
(start), `message_not_in_streaming_state` (append and stop: the stream ended server-side).

Socket Mode: `apps.connections.open` with the app-level token (`fake.app_token`, `xapp-…`;
a bot token gets `not_allowed_token_type`) answers a one-time `ws://127.0.0.1:PORT/link/?ticket=…`
URL that this server accepts as Slack's websocket (it sends `hello` first). Tests push envelopes
with `await fake.send_envelope(fake.socket_envelope("slash_commands", form))`, which waits
(bounded) for the app's ack and returns it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import itertools
import json
import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio
import pytest
from aiohttp import WSMsgType, web
from slack_sdk.web.async_client import AsyncWebClient

DEFAULT_TOKEN = "xoxb-0000-fake-bot-token"
DEFAULT_APP_TOKEN = "xapp-1-A0000APP-0000-fake-app-token"
APP_TOKEN_METHODS = frozenset({"apps.connections.open"})
FIRST_TS = 1_732_440_000_000_100  # microseconds: "1732440000.000100"
MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
MAX_MESSAGE_TEXT = 40_000
# Slack refuses a message whose blocks carry more text than this in total (undocumented;
# observed around 12 000-13 000 characters): `msg_blocks_too_long`.
MAX_BLOCKS_TEXT = 12_000
MAX_REPLIES_LIMIT = 1000

Json = dict[str, Any]
CallPredicate = Callable[["SlackCall"], bool]
T = TypeVar("T")


@dataclass(frozen=True)
class SlackCall:
    """One request the fake received, and what it answered."""

    method: str
    params: Json  # query + body merged; `blocks`, `view`, `attachments` decoded from JSON
    token: str | None = field(repr=False)
    http_method: str
    status: int
    response: Json

    @property
    def ok(self) -> bool:
        return self.status == 200 and bool(self.response.get("ok"))

    @property
    def error(self) -> str | None:
        return self.response.get("error")


@dataclass(frozen=True)
class ResponseUrlPost:
    """A body posted to a minted `response_url`."""

    url_id: str
    body: Json
    status: int


@dataclass
class _Channel:
    id: str
    name: str
    is_private: bool = False
    is_member: bool = True
    im_user: str | None = None
    messages: list[Json] = field(default_factory=list)


@dataclass
class _ResponseUrl:
    channel: str | None
    user: str | None
    posts: list[ResponseUrlPost] = field(default_factory=list)


class SlackApiError(Exception):
    """Raised inside a method handler: becomes `{"ok": false, "error": ...}`."""

    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.extra = extra


# --- Block Kit validation -----------------------------------------------------------------


_TEXT_TYPES = {"plain_text", "mrkdwn"}
_BLOCK_TYPES = {
    "actions", "context", "divider", "file", "header", "image", "input", "rich_text",
    "section", "video", "markdown", "table", "context_actions",
}  # fmt: skip


def _check_text(
    obj: Any, where: str, errors: list[str], *, max_len: int, plain_only: bool = False
) -> None:
    if not isinstance(obj, dict) or obj.get("type") not in _TEXT_TYPES:
        errors.append(f"must be a text object [json-pointer:{where}]")
        return
    if plain_only and obj["type"] != "plain_text":
        errors.append(f"must be plain_text [json-pointer:{where}/type]")
    text = obj.get("text")
    if not isinstance(text, str) or not text:
        errors.append(f"must be more than 0 characters [json-pointer:{where}/text]")
    elif len(text) > max_len:
        errors.append(f"must be less than {max_len + 1} characters [json-pointer:{where}/text]")


def _check_id(value: Any, where: str, seen: set[str], errors: list[str], *, kind: str) -> None:
    if value is None:
        return
    if not isinstance(value, str) or not value or len(value) > 255:
        errors.append(f"invalid {kind} [json-pointer:{where}]")
    elif value in seen:
        errors.append(f"duplicate {kind} `{value}` [json-pointer:{where}]")
    else:
        seen.add(value)


def _check_confirm(confirm: Any, where: str, errors: list[str]) -> None:
    if not isinstance(confirm, dict):
        errors.append(f"must be an object [json-pointer:{where}]")
        return
    _check_text(confirm.get("title"), f"{where}/title", errors, max_len=100, plain_only=True)
    _check_text(confirm.get("text"), f"{where}/text", errors, max_len=300)
    _check_text(confirm.get("confirm"), f"{where}/confirm", errors, max_len=30, plain_only=True)
    _check_text(confirm.get("deny"), f"{where}/deny", errors, max_len=30, plain_only=True)


def _check_element(element: Any, where: str, action_ids: set[str], errors: list[str]) -> None:
    if not isinstance(element, dict) or not isinstance(element.get("type"), str):
        errors.append(f"must be an element [json-pointer:{where}]")
        return
    _check_id(element.get("action_id"), f"{where}/action_id", action_ids, errors, kind="action_id")
    if element["type"] == "button":
        _check_text(element.get("text"), f"{where}/text", errors, max_len=75, plain_only=True)
        value = element.get("value")
        if value is not None and (not isinstance(value, str) or len(value) > 2000):
            errors.append(f"must be less than 2001 characters [json-pointer:{where}/value]")
        url = element.get("url")
        if url is not None and (not isinstance(url, str) or len(url) > 3000):
            errors.append(f"must be less than 3001 characters [json-pointer:{where}/url]")
        if element.get("style") not in (None, "primary", "danger"):
            errors.append(f"must be primary or danger [json-pointer:{where}/style]")
    if element["type"] == "checkboxes":
        _check_checkboxes(element, where, errors)
    if "confirm" in element:
        _check_confirm(element["confirm"], f"{where}/confirm", errors)


def _check_checkboxes(element: Json, where: str, errors: list[str]) -> None:
    """1-10 options, each text ≤ 75 and value ≤ 150 characters; the initial options among them."""
    options = element.get("options")
    if not isinstance(options, list) or not 1 <= len(options) <= 10:
        errors.append(f"must have 1 to 10 items [json-pointer:{where}/options]")
        return
    values = []
    for i, option in enumerate(options):
        _check_text(option.get("text"), f"{where}/options/{i}/text", errors, max_len=75)
        value = option.get("value")
        if not isinstance(value, str) or not 0 < len(value) <= 150:
            errors.append(f"must be 1 to 150 characters [json-pointer:{where}/options/{i}/value]")
        values.append(option)
    for i, option in enumerate(element.get("initial_options") or []):
        if option not in values:
            errors.append(f"must match an option [json-pointer:{where}/initial_options/{i}]")


def _check_block(block: Json, where: str, action_ids: set[str], errors: list[str]) -> None:
    kind = block["type"]
    if kind == "section":
        if "text" not in block and "fields" not in block:
            errors.append(f"must have text or fields [json-pointer:{where}]")
        if "text" in block:
            _check_text(block["text"], f"{where}/text", errors, max_len=3000)
        fields = block.get("fields", [])
        if not isinstance(fields, list) or len(fields) > 10:
            errors.append(f"must have at most 10 items [json-pointer:{where}/fields]")
        else:
            for i, item in enumerate(fields):
                _check_text(item, f"{where}/fields/{i}", errors, max_len=2000)
        if "accessory" in block:
            _check_element(block["accessory"], f"{where}/accessory", action_ids, errors)
    elif kind == "header":
        _check_text(block.get("text"), f"{where}/text", errors, max_len=150, plain_only=True)
    elif kind == "context":
        elements = block.get("elements")
        if not isinstance(elements, list) or not 1 <= len(elements) <= 10:
            errors.append(f"must have 1 to 10 items [json-pointer:{where}/elements]")
            return
        for i, item in enumerate(elements):
            if isinstance(item, dict) and item.get("type") in _TEXT_TYPES:
                _check_text(item, f"{where}/elements/{i}", errors, max_len=3000)
    elif kind == "actions":
        elements = block.get("elements")
        if not isinstance(elements, list) or not 1 <= len(elements) <= 25:
            errors.append(f"must have 1 to 25 items [json-pointer:{where}/elements]")
            return
        for i, item in enumerate(elements):
            _check_element(item, f"{where}/elements/{i}", action_ids, errors)
    elif kind == "input":
        _check_text(block.get("label"), f"{where}/label", errors, max_len=2000, plain_only=True)
        _check_element(block.get("element"), f"{where}/element", action_ids, errors)


def validate_blocks(blocks: Any, *, max_blocks: int = MAX_MESSAGE_BLOCKS) -> list[str]:
    """Slack's checks on a `blocks` array; returns Slack-style error strings (empty if valid)."""
    if not isinstance(blocks, list):
        return ["must be an array [json-pointer:/blocks]"]
    errors: list[str] = []
    if len(blocks) > max_blocks:
        errors.append(f"no more than {max_blocks} items allowed [json-pointer:/blocks]")
    block_ids: set[str] = set()
    action_ids: set[str] = set()
    for i, block in enumerate(blocks):
        where = f"/blocks/{i}"
        if not isinstance(block, dict) or block.get("type") not in _BLOCK_TYPES:
            errors.append(f"unsupported type [json-pointer:{where}/type]")
            continue
        _check_id(block.get("block_id"), f"{where}/block_id", block_ids, errors, kind="block_id")
        _check_block(block, where, action_ids, errors)
    return errors


def blocks_text_length(value: Any) -> int:
    """Characters in every text object's `text` within a block tree."""
    if isinstance(value, list):
        return sum(blocks_text_length(v) for v in value)
    if not isinstance(value, dict):
        return 0
    own = len(value["text"]) if isinstance(value.get("text"), str) else 0
    return own + sum(blocks_text_length(v) for k, v in value.items() if k != "text" or not own)


def _invalid_blocks(errors: list[str]) -> SlackApiError:
    return SlackApiError(
        "invalid_blocks",
        errors=errors,
        response_metadata={"messages": [f"[ERROR] {e}" for e in errors]},
    )


# --- The fake -----------------------------------------------------------------------------


class FakeSlack:
    """In-memory Slack workspace behind a loopback HTTP server. Thread-safe."""

    def __init__(
        self,
        *,
        bot_token: str = DEFAULT_TOKEN,
        app_token: str = DEFAULT_APP_TOKEN,
        team_id: str = "T0000TEAM",
        team: str = "Acme",
        bot_user_id: str = "U0000BOT",
        bot_id: str = "B0000BOT",
        bot_name: str = "taiga-planner",
        app_id: str = "A0000APP",
    ) -> None:
        self.bot_token = bot_token
        self.valid_tokens: set[str] = {bot_token}
        self.app_token = app_token  # app-level: only for APP_TOKEN_METHODS
        self.team_id = team_id
        self.team = team
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.bot_name = bot_name
        self.app_id = app_id

        self._lock = threading.Condition()
        self._ids = itertools.count(1)
        self._next_ts = FIRST_TS
        self._calls: list[SlackCall] = []
        self._channels: dict[str, _Channel] = {}
        self._users: dict[str, Json] = {}
        self._ephemerals: list[Json] = []
        self._views: dict[str, Json] = {}
        self._home_views: dict[str, Json] = {}
        self._response_urls: dict[str, _ResponseUrl] = {}
        self._rate_limits: dict[str, list[int]] = {}
        self._failures: dict[str, list[tuple[str, Json]]] = {}
        self._expired_triggers: set[str] = set()
        self._async_waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []
        self._tickets: set[str] = set()
        self._sockets: list[web.WebSocketResponse] = []
        self._acks: dict[str, Json] = {}
        self._files: dict[str, bytes] = {}
        self._streaming_refusals: dict[str, str] = {}
        self._held: set[str] = set()
        self._holding: dict[str, int] = {}
        self.file_downloads: list[tuple[str, str | None]] = []  # (file id, token sent)

        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._server_thread: threading.Thread | None = None
        self.port = 0
        self.add_user(bot_name, user_id=bot_user_id, is_bot=True)

    # --- lifecycle ---

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        """Use as `SLACK_API_URL` / `AsyncWebClient(base_url=...)`; ends with `/api/`."""
        return f"{self.base_url}/api/"

    def start(self) -> FakeSlack:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        loop = asyncio.new_event_loop()
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_route("*", "/api/{method}", self._handle_api)
        app.router.add_post("/response_url/{url_id}", self._handle_response_url)
        app.router.add_get("/link/", self._handle_socket)
        app.router.add_get("/files-pri/{file_id}/{name}", self._handle_file_download)
        app.router.add_get("/files-pri/{file_id}/download/{name}", self._handle_file_download)
        app.on_shutdown.append(self._close_sockets)
        runner = web.AppRunner(app, access_log=None)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.SockSite(runner, sock).start())
        self._loop, self._runner = loop, runner
        self._server_thread = threading.Thread(
            target=loop.run_forever, name="fake-slack", daemon=True
        )
        self._server_thread.start()
        return self

    def stop(self) -> None:
        loop, runner, thread = self._loop, self._runner, self._server_thread
        if loop is None or runner is None or thread is None:
            return
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
        self._loop = self._runner = self._server_thread = None

    def __enter__(self) -> FakeSlack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- arranging state ---

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):08d}"

    def _mint_ts(self) -> str:
        ts, self._next_ts = self._next_ts, self._next_ts + 100
        return f"{ts // 1_000_000}.{ts % 1_000_000:06d}"

    def add_channel(
        self,
        name: str = "planning",
        *,
        channel_id: str | None = None,
        is_member: bool = True,
        is_private: bool = False,
    ) -> str:
        """A channel (C…, or G… when private); the bot is a member unless `is_member=False`."""
        with self._lock:
            cid = channel_id or self._new_id("G" if is_private else "C")
            self._channels[cid] = _Channel(cid, name, is_private=is_private, is_member=is_member)
            return cid

    def set_member(self, channel: str, is_member: bool) -> None:
        with self._lock:
            self._channels[channel].is_member = is_member

    def add_user(
        self,
        real_name: str,
        *,
        user_id: str | None = None,
        display_name: str = "",
        name: str | None = None,
        is_bot: bool = False,
    ) -> str:
        """A workspace member; `users.info` answers with `real_name` and `profile.display_name`."""
        with self._lock:
            uid = user_id or self._new_id("U")
            handle = name or real_name.lower().replace(" ", ".")
            profile = {
                "real_name": real_name,
                "real_name_normalized": real_name,
                "display_name": display_name,
                "display_name_normalized": display_name,
                "team": self.team_id,
            }
            self._users[uid] = {
                "id": uid, "team_id": self.team_id, "name": handle, "deleted": False,
                "real_name": real_name, "tz": "Europe/Berlin", "is_bot": is_bot,
                "is_admin": False, "is_app_user": False, "profile": profile,
            }  # fmt: skip
            return uid

    def add_message(
        self,
        channel: str,
        text: str,
        *,
        user: str,
        thread_ts: str | None = None,
        ts: str | None = None,
        blocks: list[Json] | None = None,
        subtype: str | None = None,
    ) -> str:
        """A message by `user` (a reply when `thread_ts` is given); returns its ts. `subtype`
        makes it e.g. a `file_share`, a `thread_broadcast` or a `channel_join`."""
        with self._lock:
            message: Json = {"type": "message", "user": user, "text": text, "team": self.team_id}
            if blocks is not None:
                message["blocks"] = blocks
            if subtype is not None:
                message["subtype"] = subtype
            return self._store(channel, message, thread_ts=thread_ts, ts=ts)

    def add_app_message(
        self, channel: str, text: str, *, app_name: str, thread_ts: str | None = None
    ) -> str:
        """A message another app posted (a note-taker's meeting summary): `bot_message` with
        that app's own bot id, user and `bot_profile`."""
        with self._lock:
            bot_id = self._new_id("B")
            message: Json = {
                "type": "message", "subtype": "bot_message", "text": text, "bot_id": bot_id,
                "username": app_name, "team": self.team_id,
                "bot_profile": {"id": bot_id, "name": app_name, "app_id": self._new_id("A")},
            }  # fmt: skip
            return self._store(channel, message, thread_ts=thread_ts)

    def add_file_message(
        self, channel: str, name: str, content: bytes, *, user: str, thread_ts: str | None = None,
        text: str = "", filetype: str = "text", mimetype: str = "text/plain",
    ) -> str:
        """A `file_share` message with one uploaded file; its `url_private_download` answers
        the file to a request with the bot token, and a redirect to sign in to any other."""
        with self._lock:
            file_id = self._new_id("F")
            self._files[file_id] = content
            # Slack's shapes: …/files-pri/T-F/<name> and …/files-pri/T-F/download/<name>.
            base = f"{self.base_url}/files-pri/{self.team_id}-{file_id}"
            file: Json = {
                "id": file_id, "name": name, "title": name, "mimetype": mimetype,
                "filetype": filetype, "size": len(content), "user": user,
                "url_private": f"{base}/{name}", "url_private_download": f"{base}/download/{name}",
            }  # fmt: skip
            message: Json = {
                "type": "message", "subtype": "file_share", "user": user, "text": text,
                "team": self.team_id, "files": [file], "upload": True,
            }  # fmt: skip
            return self._store(channel, message, thread_ts=thread_ts)

    async def _handle_file_download(self, request: web.Request) -> web.Response:
        file_id = request.match_info["file_id"].rpartition("-")[2]
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else None
        with self._lock:
            self.file_downloads.append((file_id, token))
            content = self._files.get(file_id)
        if token not in self.valid_tokens:
            raise web.HTTPFound(f"{self.base_url}/signin?redir=/files-pri/{file_id}")
        if content is None:
            raise web.HTTPNotFound()
        return web.Response(body=content, content_type="application/octet-stream")

    def add_thread(self, channel: str, parent: str, *replies: str, user: str) -> str:
        """A parent message and its replies, all by `user`; returns the parent's ts."""
        parent_ts = self.add_message(channel, parent, user=user)
        for reply in replies:
            self.add_message(channel, reply, user=user, thread_ts=parent_ts)
        return parent_ts

    def delete_message(self, channel: str, ts: str) -> None:
        """Delete a message like a person does in Slack: a thread parent with replies stays as a
        `tombstone` ("This message was deleted."); any other message disappears."""
        with self._lock:
            target = self._channel(channel)
            message = self._find(channel, ts)
            if message.get("reply_count"):
                kept = {k: message[k] for k in ("ts", "thread_ts", "reply_count") if k in message}
                message.clear()
                message.update(
                    type="message", subtype="tombstone", text="This message was deleted.",
                    user="USLACKBOT", hidden=True, **kept,
                )
            else:
                target.messages.remove(message)

    def rate_limit(self, method: str, times: int = 1, *, retry_after: int = 1) -> None:
        """The next `times` calls of `method` get HTTP 429 with `Retry-After: retry_after`."""
        with self._lock:
            self._rate_limits.setdefault(method, []).extend([retry_after] * times)

    def fail_next(self, method: str, error: str, times: int = 1, **extra: Any) -> None:
        """The next `times` calls of `method` answer `{"ok": false, "error": error, **extra}`."""
        with self._lock:
            self._failures.setdefault(method, []).extend([(error, extra)] * times)

    def refuse_streaming(self, error: str) -> None:
        """Slack refuses chat streaming from now on with `error` (see the module docstring)."""
        methods = STREAMING_REFUSALS.get(error, STREAM_METHODS)
        with self._lock:
            self._streaming_refusals.update(dict.fromkeys(methods, error))

    def hold(self, method: str) -> None:
        """Calls of `method` wait unanswered (at most 30 s) until `release(method)`."""
        with self._lock:
            self._held.add(method)

    def release(self, method: str) -> None:
        with self._lock:
            self._held.discard(method)

    def holding(self, method: str) -> int:
        """How many calls of `method` are waiting unanswered right now."""
        with self._lock:
            return self._holding.get(method, 0)

    def streamed_chunks(self, channel: str, ts: str) -> list[Json]:
        """Every chunk streamed into one message, in order."""
        with self._lock:
            return [_copy(c) for c in self._find(channel, ts).get("chunks", [])]
    def clear_failures(self) -> None:
        """Forget the failures `fail_next` queued and not yet answered: Slack works again."""
        with self._lock:
            self._failures.clear()

    def expire_trigger(self, trigger_id: str) -> None:
        with self._lock:
            self._expired_triggers.add(trigger_id)

    def mint_trigger_id(self) -> str:
        with self._lock:
            return f"{next(self._ids)}.{self.team_id}.fake{next(self._ids):06d}"

    def mint_response_url(self, *, channel: str | None = None, user: str | None = None) -> str:
        """A loopback `response_url` (as carried by slash commands and block actions)."""
        with self._lock:
            url_id = self._new_id("R")
            self._response_urls[url_id] = _ResponseUrl(channel, user)
            return f"{self.base_url}/response_url/{url_id}"

    def slash_command_form(
        self, command: str, text: str, *, user: str, channel: str
    ) -> dict[str, str]:
        """The form fields Slack POSTs for a slash command (sign and send them yourself)."""
        with self._lock:
            user_name = self._users.get(user, {}).get("name", "someone")
            channel_name = self._channels[channel].name if channel in self._channels else ""
        return {
            "token": "verification-token-unused", "team_id": self.team_id,
            "team_domain": self.team.lower(), "channel_id": channel,
            "channel_name": channel_name, "user_id": user, "user_name": user_name,
            "command": command, "text": text, "api_app_id": self.app_id,
            "is_enterprise_install": "false",
            "response_url": self.mint_response_url(channel=channel, user=user),
            "trigger_id": self.mint_trigger_id(),
        }  # fmt: skip

    def _user_ref(self, user: str) -> Json:
        name = self._users.get(user, {}).get("name", "someone")
        return {"id": user, "username": name, "name": name, "team_id": self.team_id}

    def block_action_payload(
        self, channel: str, message_ts: str, action_id: str, *, user: str
    ) -> Json:
        """What Slack sends when `user` clicks the button `action_id` in a stored message.

        Send it as the form field `payload=<json>` (signed) to the app's request URL.
        """
        with self._lock:
            message = _copy(self._find(channel, message_ts))
            action = _find_button(message, action_id)
            if action is None:
                raise KeyError(f"no button {action_id!r} in message {message_ts}")
            return self._message_action(channel, message, action, user=user)

    def checkbox_action_payload(
        self, channel: str, message_ts: str, value: str, *, ticked: bool, user: str
    ) -> Json:
        """What Slack sends when `user` ticks (or unticks) the checkbox option `value` of a
        stored message: the group's `selected_options` after the click."""
        with self._lock:
            message = _copy(self._find(channel, message_ts))
            group = _find_checkboxes(message, value)
            if group is None:
                raise KeyError(f"no checkbox {value!r} in message {message_ts}")
            element, block_id = group
            chosen = {o["value"] for o in element.get("initial_options") or []}
            chosen = chosen | {value} if ticked else chosen - {value}
            action = {
                "type": "checkboxes", "action_id": element["action_id"], "block_id": block_id,
                "selected_options": [o for o in element["options"] if o["value"] in chosen],
            }  # fmt: skip
            return self._message_action(channel, message, action, user=user)

    def _message_action(self, channel: str, message: Json, action: Json, *, user: str) -> Json:
        action["action_ts"] = self._mint_ts()
        container: Json = {
            "type": "message", "message_ts": message["ts"], "channel_id": channel,
            "is_ephemeral": False,
        }  # fmt: skip
        if message.get("thread_ts"):
            container["thread_ts"] = message["thread_ts"]
        return {
            "type": "block_actions", "user": self._user_ref(user),
            "api_app_id": self.app_id, "token": "verification-token-unused",
            "container": container, "trigger_id": self.mint_trigger_id(),
            "team": {"id": self.team_id, "domain": self.team.lower()},
            "enterprise": None, "is_enterprise_install": False,
            "channel": {"id": channel, "name": self._channels[channel].name},
            "message": message, "state": _message_state(message, action),
            "response_url": self.mint_response_url(channel=channel, user=user),
            "actions": [action],
        }  # fmt: skip

    def view_action_payload(self, view_id: str, action_id: str, *, user: str) -> Json:
        """What Slack sends when `user` clicks the button `action_id` in an open modal (no
        response_url: a modal's buttons answer with views.update)."""
        with self._lock:
            view = _copy(self._views[view_id])
            action = _find_button(view, action_id)
            if action is None:
                raise KeyError(f"no button {action_id!r} in view {view_id}")
            action["action_ts"] = self._mint_ts()
            return {
                "type": "block_actions", "user": self._user_ref(user),
                "api_app_id": self.app_id, "token": "verification-token-unused",
                "container": {"type": "view", "view_id": view_id},
                "trigger_id": self.mint_trigger_id(),
                "team": {"id": self.team_id, "domain": self.team.lower()},
                "enterprise": None, "is_enterprise_install": False,
                "view": view, "actions": [action],
            }  # fmt: skip

    def view_submission_payload(
        self, view_id: str, *, user: str, values: Mapping[str, Mapping[str, str]]
    ) -> Json:
        """What Slack sends when `user` submits an open modal.

        `values` maps block_id → action_id → the typed text (plain_text_input values).
        """
        with self._lock:
            view = _copy(self._views[view_id])
            view["state"] = {
                "values": {
                    block_id: {
                        action_id: {"type": "plain_text_input", "value": value}
                        for action_id, value in actions.items()
                    }
                    for block_id, actions in values.items()
                }
            }
            return {
                "type": "view_submission", "team": {"id": self.team_id,
                "domain": self.team.lower()}, "user": self._user_ref(user),
                "api_app_id": self.app_id, "token": "verification-token-unused",
                "trigger_id": self.mint_trigger_id(), "view": view, "response_urls": [],
                "is_enterprise_install": False, "enterprise": None,
            }  # fmt: skip

    def app_mention_event(
        self, channel: str, text: str, *, user: str, thread_ts: str | None = None
    ) -> Json:
        """Store a message mentioning the bot and return the Events API envelope for it.

        `text` is Slack's escaped text; put `<@{fake.bot_user_id}>` in it yourself.
        """
        ts = self.add_message(channel, text, user=user, thread_ts=thread_ts)
        with self._lock:
            event: Json = {
                "type": "app_mention", "user": user, "text": text, "ts": ts,
                "channel": channel, "event_ts": ts, "team": self.team_id,
            }  # fmt: skip
            if thread_ts:
                event["thread_ts"] = thread_ts
            return self._event_envelope(event, ts)

    def app_home_opened_event(self, user: str, *, tab: str = "home") -> Json:
        """The Events API envelope Slack sends when `user` opens the app's Home (or Messages)
        tab; it carries the Home view last published for them, if any."""
        with self._lock:
            if user not in self._users:
                raise KeyError(f"no user {user!r}")
            ts = self._mint_ts()
            event: Json = {
                "type": "app_home_opened", "user": user, "channel": self._open_im(user).id,
                "tab": tab, "event_ts": ts,
            }  # fmt: skip
            if user in self._home_views:
                event["view"] = _copy(self._home_views[user])
            return self._event_envelope(event, ts)

    def home_action_payload(self, user: str, action_id: str) -> Json:
        """What Slack sends when `user` clicks the button `action_id` in their Home tab: a
        `block_actions` with a view container, a trigger id and no response_url."""
        with self._lock:
            view = _copy(self._home_views[user])
            action = _find_view_button(view, action_id)
            if action is None:
                raise KeyError(f"no button {action_id!r} in the Home tab of {user}")
            action["action_ts"] = self._mint_ts()
            return {
                "type": "block_actions", "user": self._user_ref(user),
                "api_app_id": self.app_id, "token": "verification-token-unused",
                "container": {"type": "view", "view_id": view["id"]},
                "trigger_id": self.mint_trigger_id(),
                "team": {"id": self.team_id, "domain": self.team.lower()},
                "enterprise": None, "is_enterprise_install": False,
                "view": view, "actions": [action],
            }  # fmt: skip

    def _event_envelope(self, event: Json, ts: str) -> Json:
        return {
            "token": "verification-token-unused", "team_id": self.team_id,
            "api_app_id": self.app_id, "event": event, "type": "event_callback",
            "event_id": self._new_id("Ev"), "event_time": int(float(ts)),
            "authorizations": [{"enterprise_id": None, "team_id": self.team_id,
                                "user_id": self.bot_user_id, "is_bot": True,
                                "is_enterprise_install": False}],
            "is_ext_shared_channel": False,
        }  # fmt: skip

    def edited_mention_event(self, envelope: Json, text: str, *, user: str | None = None) -> Json:
        """Edit the message of an `app_mention_event` envelope and return what Slack sends for
        the edit: a new `app_mention` (new event id) for the same `ts`, carrying `edited`."""
        event = envelope["event"]
        with self._lock:
            message = self._find(event["channel"], event["ts"])
            edited = {"user": user or event["user"], "ts": self._mint_ts()}
            message.update(text=text, edited=edited)
            return {
                **envelope,
                "event": {**event, "text": text, "edited": edited},
                "event_id": self._new_id("Ev"),
            }

    # --- inspecting state ---

    def calls(self, method: str | None = None) -> list[SlackCall]:
        """Every call received (refused and rate-limited ones too), oldest first."""
        with self._lock:
            return [c for c in self._calls if method is None or c.method == method]

    def call_count(self, method: str) -> int:
        return len(self.calls(method))

    def messages(self, channel: str) -> list[Json]:
        """Every message in `channel` (thread replies included) in ts order; copies."""
        with self._lock:
            return [_copy(m) for m in self._channel(channel).messages]

    def message(self, channel: str, ts: str) -> Json:
        with self._lock:
            return _copy(self._find(channel, ts))

    def thread(self, channel: str, ts: str) -> list[Json]:
        """The parent message and its replies, in order; copies."""
        with self._lock:
            return [_copy(m) for m in self._thread_messages(channel, ts)]

    def ephemerals(self, channel: str | None = None, *, user: str | None = None) -> list[Json]:
        with self._lock:
            return [
                _copy(e)
                for e in self._ephemerals
                if (channel is None or e["channel"] == channel)
                and (user is None or e["user"] == user)
            ]

    def views(self) -> list[Json]:
        """Modals opened with `views.open` (current versions)."""
        with self._lock:
            return [_copy(v) for v in self._views.values()]

    def home_view(self, user: str) -> Json | None:
        with self._lock:
            view = self._home_views.get(user)
            return _copy(view) if view is not None else None

    def response_url_posts(self, url: str | None = None) -> list[ResponseUrlPost]:
        """What was posted to minted response URLs (one URL, or all)."""
        with self._lock:
            if url is not None:
                return list(self._response_urls[url.rstrip("/").rsplit("/", 1)[-1]].posts)
            return [p for r in self._response_urls.values() for p in r.posts]

    # --- waiting on background work ---

    def _matches(self, method: str, predicate: CallPredicate | None) -> list[SlackCall]:
        return [
            c for c in self._calls if c.method == method and (predicate is None or predicate(c))
        ]

    async def wait_for(
        self,
        method: str,
        predicate: CallPredicate | None = None,
        *,
        count: int = 1,
        within: float = 10.0,
    ) -> SlackCall:
        """Wait (at most `within` s) until `count` calls of `method` match; return the last one.

        Event-based: woken by each recorded call. Raises `TimeoutError` listing what arrived.
        """

        def check() -> SlackCall | None:
            found = self._matches(method, predicate)
            return found[count - 1] if len(found) >= count else None

        return await self._wait_until(
            check, within, lambda: self._timeout_message(method, count, within)
        )

    async def wait_for_response_url(
        self, url: str, *, count: int = 1, within: float = 10.0
    ) -> ResponseUrlPost:
        """Wait (at most `within` s) until `count` bodies were posted to `url`; return the last."""

        def check() -> ResponseUrlPost | None:
            posts = self.response_url_posts(url)
            return posts[count - 1] if len(posts) >= count else None

        return await self._wait_until(
            check, within, lambda: f"no {count} post(s) to {url} within {within}s"
        )

    def socket_envelope(self, kind: str, payload: Json) -> Json:
        """A Socket Mode envelope (`slash_commands`, `interactive`, `events_api`) for `payload`."""
        with self._lock:
            envelope_id = self._new_id("env-")
        return {
            "envelope_id": envelope_id, "type": kind, "payload": payload,
            "accepts_response_payload": kind != "events_api", "retry_attempt": 0,
        }  # fmt: skip

    async def send_envelope(self, envelope: Json, *, within: float = 10.0) -> Json:
        """Send `envelope` over the app's Socket Mode connection (waiting, bounded, for it to
        connect) and return the app's ack for it (waiting at most `within` s)."""
        assert self._loop is not None, "the fake Slack is not running"
        ws = await self._wait_until(
            lambda: self._sockets[-1] if self._sockets else None,
            within,
            lambda: f"no Socket Mode connection within {within}s",
        )
        sent = asyncio.run_coroutine_threadsafe(ws.send_json(envelope), self._loop)
        await asyncio.wrap_future(sent)
        envelope_id = envelope["envelope_id"]
        return await self._wait_until(
            lambda: self._acks.get(envelope_id),
            within,
            lambda: f"no ack for envelope {envelope_id} within {within}s",
        )

    async def _wait_until(
        self, check: Callable[[], T | None], within: float, describe: Callable[[], str]
    ) -> T:
        loop = asyncio.get_running_loop()
        event = asyncio.Event()
        with self._lock:
            self._async_waiters.append((loop, event))
        try:
            with anyio.fail_after(within):
                while True:
                    event.clear()
                    with self._lock:
                        found = check()
                    if found is not None:
                        return found
                    await event.wait()
        except TimeoutError:
            raise TimeoutError(describe()) from None
        finally:
            with self._lock:
                self._async_waiters.remove((loop, event))

    def wait_for_sync(
        self,
        method: str,
        predicate: CallPredicate | None = None,
        *,
        count: int = 1,
        within: float = 10.0,
    ) -> SlackCall:
        """Blocking variant of `wait_for` for threads / sync tests (never from the event loop)."""
        with self._lock:
            ok = self._lock.wait_for(
                lambda: len(self._matches(method, predicate)) >= count, timeout=within
            )
            if ok:
                return self._matches(method, predicate)[count - 1]
        raise TimeoutError(self._timeout_message(method, count, within))

    def _timeout_message(self, method: str, count: int, within: float) -> str:
        seen = [(c.method, c.error) for c in self.calls()]
        return f"no {count} matching {method} call(s) within {within}s; calls so far: {seen}"

    def _record(self, call: SlackCall) -> None:
        with self._lock:
            self._calls.append(call)
        self._wake()

    def _wake(self) -> None:
        with self._lock:
            self._lock.notify_all()
            waiters = list(self._async_waiters)
        for loop, event in waiters:
            if not loop.is_closed():
                loop.call_soon_threadsafe(event.set)

    # --- HTTP ---

    async def _handle_api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params = await _read_params(request)
        await self._wait_while_held(method)
        token = params.pop("token", None)
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            token = auth.removeprefix("Bearer ").strip()
        status, body, headers = self._dispatch(method, params, token)
        self._record(SlackCall(method, params, token, request.method, status, body))
        return web.json_response(body, status=status, headers=headers)

    async def _wait_while_held(self, method: str) -> None:
        with self._lock:
            if method not in self._held:
                return
            self._holding[method] = self._holding.get(method, 0) + 1
        self._wake()
        try:
            for _ in range(3000):  # 30 s at most
                with self._lock:
                    if method not in self._held:
                        return
                await asyncio.sleep(0.01)
        finally:
            with self._lock:
                self._holding[method] -= 1
    def _dispatch(
        self, method: str, params: Json, token: str | None
    ) -> tuple[int, Json, dict[str, str]]:
        with self._lock:
            waits = self._rate_limits.get(method)
            if waits:
                retry_after = waits.pop(0)
                body = {"ok": False, "error": "ratelimited"}
                return 429, body, {"Retry-After": str(retry_after)}
            allowed = {self.app_token} if method in APP_TOKEN_METHODS else self.valid_tokens
            if token not in allowed:
                wrong_kind = token == self.app_token or token in self.valid_tokens
                error = "not_allowed_token_type" if wrong_kind else "invalid_auth"
                return 200, {"ok": False, "error": error}, {}
            refusal = self._streaming_refusals.get(method)
            if refusal:
                return 200, {"ok": False, "error": refusal}, {}
            failures = self._failures.get(method)
            if failures:
                error, extra = failures.pop(0)
                return 200, {"ok": False, "error": error, **extra}, {}
            handler = _HANDLERS.get(method)
            if handler is None:
                return 200, {"ok": False, "error": "unknown_method"}, {}
            try:
                return 200, {"ok": True, **handler(self, params)}, {}
            except SlackApiError as exc:
                return 200, {"ok": False, "error": exc.error, **exc.extra}, {}
            except Exception as exc:  # surfaced to the test through the recorded call
                body = {"ok": False, "error": "fatal_error", "detail": repr(exc)}
                return 200, body, {}

    async def _handle_response_url(self, request: web.Request) -> web.Response:
        url_id = request.match_info["url_id"]
        params = await _read_params(request)
        if "payload" in params and isinstance(params["payload"], str):
            params = json.loads(params["payload"])
        with self._lock:
            target = self._response_urls.get(url_id)
            if target is None:
                return web.json_response({"ok": False, "error": "expired_url"}, status=404)
            errors = validate_blocks(params["blocks"]) if "blocks" in params else []
            status = 400 if errors else 200
            target.posts.append(ResponseUrlPost(url_id, params, status))
        self._wake()
        if errors:
            return web.json_response({"ok": False, "error": "invalid_blocks"}, status=400)
        return web.json_response({"ok": True})

    async def _handle_socket(self, request: web.Request) -> web.StreamResponse:
        """Slack's side of Socket Mode: `hello`, then every text frame is an ack."""
        with self._lock:
            ticket = request.query.get("ticket", "")
            if ticket not in self._tickets:
                return web.Response(status=401, text="invalid ticket")
            self._tickets.discard(ticket)  # one connection per apps.connections.open
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_json({
            "type": "hello", "num_connections": 1,
            "connection_info": {"app_id": self.app_id},
            "debug_info": {"host": "fake-slack", "approximate_connection_time": 3600},
        })  # fmt: skip
        with self._lock:
            self._sockets.append(ws)
        self._wake()
        try:
            async for frame in ws:
                if frame.type == WSMsgType.TEXT:
                    self._record_ack(json.loads(frame.data))
        finally:
            with self._lock:
                self._sockets.remove(ws)
        return ws

    def _record_ack(self, ack: Json) -> None:
        if "envelope_id" in ack:
            with self._lock:
                self._acks[str(ack["envelope_id"])] = ack
            self._wake()

    async def _close_sockets(self, _app: web.Application) -> None:
        with self._lock:
            sockets = list(self._sockets)
        for ws in sockets:
            await ws.close()

    # --- state helpers (call with the lock held) ---

    def _channel(self, channel: str) -> _Channel:
        found = self._channels.get(channel)
        if found is None:
            raise SlackApiError("channel_not_found")
        return found

    def _readable_channel(self, channel: Any) -> _Channel:
        if isinstance(channel, str) and channel[:1] in ("U", "W") and channel in self._users:
            return self._open_im(channel)
        found = self._channel(str(channel or ""))
        if not found.is_member:
            raise SlackApiError("channel_not_found" if found.is_private else "not_in_channel")
        return found

    def _open_im(self, user: str) -> _Channel:
        for existing in self._channels.values():
            if existing.im_user == user:
                return existing
        cid = self._new_id("D")
        self._channels[cid] = _Channel(cid, "", is_private=True, im_user=user)
        return self._channels[cid]

    def _find(self, channel: str, ts: str) -> Json:
        for message in self._channel(channel).messages:
            if message["ts"] == ts:
                return message
        raise SlackApiError("message_not_found")

    def _thread_messages(self, channel: str, ts: str) -> list[Json]:
        messages = self._channel(channel).messages
        parent = [m for m in messages if m["ts"] == ts]
        replies = [m for m in messages if m.get("thread_ts") == ts and m["ts"] != ts]
        return parent + replies

    def _store(
        self, channel: str, message: Json, *, thread_ts: str | None, ts: str | None = None
    ) -> str:
        target = self._channel(channel)
        message["ts"] = ts or self._mint_ts()
        if thread_ts:
            message["thread_ts"] = thread_ts
            for parent in target.messages:
                if parent["ts"] == thread_ts:
                    parent["thread_ts"] = thread_ts
                    parent["reply_count"] = parent.get("reply_count", 0) + 1
                    users = parent.setdefault("reply_users", [])
                    if message.get("user") and message["user"] not in users:
                        users.append(message["user"])
                    parent["latest_reply"] = message["ts"]
                    message["parent_user_id"] = parent.get("user")
        target.messages.append(message)
        target.messages.sort(key=lambda m: _ts_key(m["ts"]))
        return message["ts"]

    def _bot_message(self, params: Json) -> Json:
        text = params.get("text")
        blocks = params.get("blocks")
        if not text and not blocks and not params.get("attachments"):
            raise SlackApiError("no_text")
        if isinstance(text, str) and len(text) > MAX_MESSAGE_TEXT:
            raise SlackApiError("msg_too_long")
        if blocks is not None:
            errors = validate_blocks(blocks)
            if errors:
                raise _invalid_blocks(errors)
            if blocks_text_length(blocks) > MAX_BLOCKS_TEXT:
                raise SlackApiError("msg_blocks_too_long")
        message: Json = {
            "type": "message", "subtype": "bot_message", "text": text or "",
            "user": self.bot_user_id, "bot_id": self.bot_id, "app_id": self.app_id,
            "team": self.team_id,
        }  # fmt: skip
        if blocks:
            message["blocks"] = blocks
        if params.get("attachments"):
            message["attachments"] = params["attachments"]
        return message

    def _check_view(self, view: Any) -> Json:
        if not isinstance(view, dict) or view.get("type") not in ("modal", "home"):
            raise SlackApiError("invalid_arguments", response_metadata={"messages": ["view"]})
        errors = validate_blocks(view.get("blocks", []), max_blocks=MAX_VIEW_BLOCKS)
        if view["type"] == "modal":
            _check_text(view.get("title"), "/view/title", errors, max_len=24, plain_only=True)
            for key in ("submit", "close"):
                if key in view:
                    _check_text(view[key], f"/view/{key}", errors, max_len=24, plain_only=True)
        if len(str(view.get("private_metadata", ""))) > 3000:
            errors.append("must be less than 3001 characters [json-pointer:/view/private_metadata]")
        if errors:
            messages = [f"[ERROR] {e}" for e in errors]
            raise SlackApiError("invalid_arguments", response_metadata={"messages": messages})
        return view

    def _store_view(self, view: Json, *, view_id: str | None = None) -> Json:
        stored: Json = {
            "id": view_id or self._new_id("V"), "team_id": self.team_id,
            "blocks": [], "private_metadata": "", "callback_id": "", "external_id": "",
            "state": {"values": {}}, "hash": self._mint_ts(), "app_id": self.app_id,
            "bot_id": self.bot_id, "root_view_id": None, "previous_view_id": None,
            "clear_on_close": False, "notify_on_close": False,
        }  # fmt: skip
        stored.update(view)
        stored["root_view_id"] = stored["root_view_id"] or stored["id"]
        return stored

    # --- method handlers (lock held; return the body without "ok") ---

    def _apps_connections_open(self, params: Json) -> Json:
        ticket = self._new_id("ticket-")
        self._tickets.add(ticket)
        return {"url": f"ws://127.0.0.1:{self.port}/link/?ticket={ticket}&app_id={self.app_id}"}

    def _auth_test(self, params: Json) -> Json:
        return {
            "url": f"https://{self.team.lower()}.slack.com/", "team": self.team,
            "user": self.bot_name, "team_id": self.team_id, "user_id": self.bot_user_id,
            "bot_id": self.bot_id, "is_enterprise_install": False,
        }  # fmt: skip

    def _chat_post_message(self, params: Json) -> Json:
        target = self._readable_channel(params.get("channel"))
        message = self._bot_message(params)
        ts = self._store(target.id, message, thread_ts=params.get("thread_ts"))
        return {"channel": target.id, "ts": ts, "message": _copy(message)}

    def _chat_update(self, params: Json) -> Json:
        target = self._readable_channel(params.get("channel"))
        message = self._find(target.id, str(params.get("ts", "")))
        if message.get("bot_id") != self.bot_id:
            raise SlackApiError("cant_update_message")
        merged = {"text": message.get("text"), "blocks": message.get("blocks"), **params}
        updated = self._bot_message(merged)
        message.update(updated)
        if "blocks" in params and not params["blocks"]:
            message.pop("blocks", None)
        message["edited"] = {"user": self.bot_user_id, "ts": self._mint_ts()}
        return {
            "channel": target.id, "ts": message["ts"], "text": message["text"],
            "message": _copy(message),
        }  # fmt: skip

    def _chat_start_stream(self, params: Json) -> Json:
        target = self._readable_channel(params.get("channel"))
        thread_ts = params.get("thread_ts")
        if not thread_ts:
            raise SlackApiError("invalid_arguments", response_metadata={"messages": [
                "[ERROR] missing required field: thread_ts"]})  # fmt: skip
        if target.im_user is None:
            for field_name in ("recipient_user_id", "recipient_team_id"):
                if not params.get(field_name):
                    raise SlackApiError("invalid_arguments", response_metadata={"messages": [
                        f"[ERROR] {field_name} is required outside of a DM"]})  # fmt: skip
        self._find(target.id, str(thread_ts))
        message: Json = {
            "type": "message", "text": "", "user": self.bot_user_id, "bot_id": self.bot_id,
            "app_id": self.app_id, "team": self.team_id, "streaming_state": "in_progress",
            "chunks": [],
        }  # fmt: skip
        self._add_chunks(message, params)
        ts = self._store(target.id, message, thread_ts=str(thread_ts))
        return {"channel": target.id, "ts": ts}

    def _chat_append_stream(self, params: Json) -> Json:
        target, message = self._streaming_message(params)
        self._add_chunks(message, params)
        return {"channel": target.id, "ts": message["ts"]}

    def _chat_stop_stream(self, params: Json) -> Json:
        target, message = self._streaming_message(params)
        blocks = params.get("blocks")
        if blocks is not None:
            errors = validate_blocks(blocks)
            if errors:
                raise _invalid_blocks(errors)
        self._add_chunks(message, params)
        if blocks:
            message["blocks"] = blocks
        message["streaming_state"] = "completed"
        return {"channel": target.id, "ts": message["ts"], "message": _copy(message)}

    def _streaming_message(self, params: Json) -> tuple[_Channel, Json]:
        target = self._readable_channel(params.get("channel"))
        message = self._find(target.id, str(params.get("ts", "")))
        if message.get("streaming_state") != "in_progress":
            raise SlackApiError("message_not_in_streaming_state")
        return target, message

    @staticmethod
    def _add_chunks(message: Json, params: Json) -> None:
        chunks = list(params.get("chunks") or [])
        if params.get("markdown_text"):
            chunks.insert(0, {"type": "markdown_text", "text": params["markdown_text"]})
        errors = [e for i, chunk in enumerate(chunks) for e in _chunk_errors(chunk, i)]
        if errors:
            messages = [f"[ERROR] {e}" for e in errors]
            raise SlackApiError("invalid_chunks", response_metadata={"messages": messages})
        message["chunks"].extend(chunks)
        message["text"] += "".join(c["text"] for c in chunks if c["type"] == "markdown_text")

    def _chat_post_ephemeral(self, params: Json) -> Json:
        user = str(params.get("user", ""))
        if user not in self._users:
            raise SlackApiError("user_not_found")
        target = self._readable_channel(params.get("channel"))
        message = self._bot_message(params)
        ts = self._mint_ts()
        message.update(channel=target.id, user=user, ts=ts, thread_ts=params.get("thread_ts"))
        self._ephemerals.append(message)
        return {"message_ts": ts}

    def _views_open(self, params: Json) -> Json:
        trigger = params.get("trigger_id")
        if not trigger:
            raise SlackApiError("invalid_arguments")
        if trigger in self._expired_triggers:
            raise SlackApiError("expired_trigger_id")
        stored = self._store_view(self._check_view(params.get("view")))
        self._views[stored["id"]] = stored
        return {"view": _copy(stored)}

    def _views_update(self, params: Json) -> Json:
        view_id = params.get("view_id")
        external_id = params.get("external_id")
        current = self._views.get(str(view_id)) if view_id else None
        if current is None and external_id:
            current = next(
                (v for v in self._views.values() if v.get("external_id") == external_id), None
            )
        if current is None:
            raise SlackApiError("not_found")
        if params.get("hash") and params["hash"] != current["hash"]:
            raise SlackApiError("hash_conflict")
        view = self._check_view(params.get("view"))
        stored = self._store_view(view, view_id=current["id"])
        stored["root_view_id"] = current["root_view_id"]
        self._views[current["id"]] = stored
        return {"view": _copy(stored)}

    def _views_publish(self, params: Json) -> Json:
        """The user's Home tab: one view per user whose id stays across publishes, a new
        `hash` each time (a stale `hash` gets `hash_conflict`); only `type: home` views."""
        user = str(params.get("user_id", ""))
        if user not in self._users:
            raise SlackApiError("user_not_found")
        view = self._check_view(params.get("view"))
        if view["type"] != "home":
            raise SlackApiError(
                "invalid_arguments", response_metadata={"messages": ["[ERROR] must be home "
                                                                     "[json-pointer:/view/type]"]}
            )
        current = self._home_views.get(user)
        if current and params.get("hash") and params["hash"] != current["hash"]:
            raise SlackApiError("hash_conflict")
        stored = self._store_view(
            {"title": None, "close": None, "submit": None, **view},
            view_id=current["id"] if current else None,
        )
        self._home_views[user] = stored
        return {"view": _copy(stored)}

    def _conversations_replies(self, params: Json) -> Json:
        target = self._readable_channel(params.get("channel"))
        thread = self._thread_messages(target.id, str(params.get("ts", "")))
        if not thread:
            raise SlackApiError("thread_not_found")
        limit = _as_int(params.get("limit"), default=MAX_REPLIES_LIMIT)
        limit = max(1, min(limit, MAX_REPLIES_LIMIT))
        start = _decode_cursor(params.get("cursor"), len(thread))
        page = thread[start : start + limit]
        has_more = start + limit < len(thread)
        next_cursor = _encode_cursor(start + limit) if has_more else ""
        return {
            "messages": [_copy(m) for m in page],
            "has_more": has_more,
            "response_metadata": {"next_cursor": next_cursor},
        }

    def _conversations_info(self, params: Json) -> Json:
        found = self._channel(str(params.get("channel", "")))
        if found.is_private and not found.is_member:
            raise SlackApiError("channel_not_found")
        if found.im_user:
            info: Json = {"id": found.id, "is_im": True, "user": found.im_user, "created": 0}
            return {"channel": info}
        return {
            "channel": {
                "id": found.id, "name": found.name, "name_normalized": found.name,
                "is_channel": not found.is_private, "is_group": found.is_private,
                "is_im": False, "is_mpim": False, "is_private": found.is_private,
                "is_archived": False, "is_general": False, "is_member": found.is_member,
                "created": 1_700_000_000, "context_team_id": self.team_id,
            }
        }  # fmt: skip

    def _reactions_add(self, params: Json) -> Json:
        target = self._readable_channel(params.get("channel"))
        message = self._find(target.id, str(params.get("timestamp", "")))
        name = str(params.get("name", ""))
        for reaction in message.setdefault("reactions", []):
            if reaction["name"] == name:
                if self.bot_user_id in reaction["users"]:
                    raise SlackApiError("already_reacted")
                reaction["users"].append(self.bot_user_id)
                reaction["count"] += 1
                return {}
        message["reactions"].append({"name": name, "users": [self.bot_user_id], "count": 1})
        return {}

    def _reactions_remove(self, params: Json) -> Json:
        target = self._readable_channel(params.get("channel"))
        message = self._find(target.id, str(params.get("timestamp", "")))
        name = str(params.get("name", ""))
        for reaction in message.get("reactions", []):
            if reaction["name"] == name and self.bot_user_id in reaction["users"]:
                reaction["users"].remove(self.bot_user_id)
                reaction["count"] -= 1
                message["reactions"] = [r for r in message["reactions"] if r["count"]]
                return {}
        raise SlackApiError("no_reaction")

    def _chat_get_permalink(self, params: Json) -> Json:
        channel = str(params.get("channel", ""))
        ts = str(params.get("message_ts", ""))
        self._find(channel, ts)
        link = f"https://{self.team.lower()}.slack.com/archives/{channel}/p{ts.replace('.', '')}"
        return {"channel": channel, "permalink": link}

    def _users_info(self, params: Json) -> Json:
        user = self._users.get(str(params.get("user", "")))
        if user is None:
            raise SlackApiError("user_not_found")
        return {"user": _copy(user)}

    def _conversations_open(self, params: Json) -> Json:
        users = params.get("users")
        if isinstance(users, list):
            users = ",".join(users)
        ids = [u.strip() for u in str(users or "").split(",") if u.strip()]
        if len(ids) != 1:
            raise SlackApiError("invalid_arguments")
        if ids[0] not in self._users:
            raise SlackApiError("user_not_found")
        existed = any(c.im_user == ids[0] for c in self._channels.values())
        channel = self._open_im(ids[0])
        body: Json = {"channel": {"id": channel.id}}
        if existed:
            body.update(no_op=True, already_open=True)
        return body


_HANDLERS: dict[str, Callable[[FakeSlack, Json], Json]] = {
    "apps.connections.open": FakeSlack._apps_connections_open,
    "reactions.add": FakeSlack._reactions_add,
    "reactions.remove": FakeSlack._reactions_remove,
    "chat.getPermalink": FakeSlack._chat_get_permalink,
    "auth.test": FakeSlack._auth_test,
    "chat.postMessage": FakeSlack._chat_post_message,
    "chat.update": FakeSlack._chat_update,
    "chat.postEphemeral": FakeSlack._chat_post_ephemeral,
    "chat.startStream": FakeSlack._chat_start_stream,
    "chat.appendStream": FakeSlack._chat_append_stream,
    "chat.stopStream": FakeSlack._chat_stop_stream,
    "views.open": FakeSlack._views_open,
    "views.update": FakeSlack._views_update,
    "views.publish": FakeSlack._views_publish,
    "conversations.replies": FakeSlack._conversations_replies,
    "conversations.info": FakeSlack._conversations_info,
    "conversations.open": FakeSlack._conversations_open,
    "users.info": FakeSlack._users_info,
}

_JSON_FIELDS = ("blocks", "attachments", "view", "metadata", "chunks")
STREAM_METHODS = ("chat.startStream", "chat.appendStream", "chat.stopStream")
STREAMING_REFUSALS = {
    "method_not_supported_for_channel_type": ("chat.startStream",),
    "message_not_in_streaming_state": ("chat.appendStream", "chat.stopStream"),
}
TASK_STATUSES = frozenset({"pending", "in_progress", "complete", "error"})
CHUNK_TEXT_MAX = 256


def _chunk_errors(chunk: Any, index: int) -> list[str]:
    """Slack's checks of one streaming chunk (markdown_text or task_update; others pass)."""
    where = f"[json-pointer:/chunks/{index}]"
    if not isinstance(chunk, dict) or not chunk.get("type"):
        return [f"missing required field: type {where}"]
    if chunk["type"] == "markdown_text":
        return [] if isinstance(chunk.get("text"), str) else [f"missing text {where}"]
    if chunk["type"] != "task_update":
        return []
    errors = [f"missing required field: {k} {where}" for k in ("id", "title") if not chunk.get(k)]
    if chunk.get("status") not in TASK_STATUSES:
        errors.append(f"invalid status {chunk.get('status')!r} {where}")
    for key in ("details", "output"):
        if len(str(chunk.get(key) or "")) > CHUNK_TEXT_MAX:
            errors.append(f"{key} must be at most {CHUNK_TEXT_MAX} characters {where}")
    return errors


async def _read_params(request: web.Request) -> Json:
    params: Json = dict(request.query)
    if request.can_read_body:
        if request.content_type == "application/json":
            body = await request.json()
            if isinstance(body, dict):
                params.update(body)
        else:
            params.update({k: v for k, v in (await request.post()).items() if isinstance(v, str)})
    for key in _JSON_FIELDS:
        if isinstance(params.get(key), str):
            try:
                params[key] = json.loads(params[key])
            except json.JSONDecodeError:
                params[key] = {"undecodable": params[key]}
    return params


def _find_button(message: Json, action_id: str) -> Json | None:
    for block in message.get("blocks", []):
        if block.get("type") != "actions":
            continue
        for element in block.get("elements", []):
            if element.get("action_id") == action_id:
                return {**element, "block_id": block.get("block_id", "")}
    return None


def _find_view_button(view: Json, action_id: str) -> Json | None:
    """A button in an actions block or a section's accessory (Home tabs use both)."""
    found = _find_button(view, action_id)
    if found is not None:
        return found
    for block in view.get("blocks", []):
        accessory = block.get("accessory") or {}
        if accessory.get("action_id") == action_id:
            return {**accessory, "block_id": block.get("block_id", "")}
    return None


def _checkbox_groups(message: Json) -> list[tuple[Json, str]]:
    """Every checkboxes element of a message (in a section's accessory or an actions block),
    with its block's id."""
    groups = []
    for block in message.get("blocks", []):
        for element in [block.get("accessory") or {}, *block.get("elements", [])]:
            if element.get("type") == "checkboxes":
                groups.append((element, block.get("block_id", "")))
    return groups


def _find_checkboxes(message: Json, value: str) -> tuple[Json, str] | None:
    """The checkboxes element with an option `value`, and its block's id."""
    for element, block_id in _checkbox_groups(message):
        if any(o.get("value") == value for o in element.get("options", [])):
            return element, block_id
    return None


def _message_state(message: Json, action: Json) -> Json:
    """`state.values` of a block_actions payload: each checkbox group of the message with what
    the clicker sees ticked, the clicked group as the click left it."""
    values: Json = {}
    for element, block_id in _checkbox_groups(message):
        selected = element.get("initial_options") or []
        if element["action_id"] == action.get("action_id"):
            selected = action.get("selected_options", selected)
        values.setdefault(block_id, {})[element["action_id"]] = {
            "type": "checkboxes", "selected_options": selected,
        }
    return {"values": values}


def _copy(value: Json) -> Json:
    return json.loads(json.dumps(value))


def _ts_key(ts: str) -> tuple[int, int]:
    seconds, _, micros = ts.partition(".")
    return int(seconds), int(micros or 0)


def _as_int(value: Any, *, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _encode_cursor(index: int) -> str:
    return base64.b64encode(f"next_index:{index}".encode()).decode()


def _decode_cursor(cursor: Any, size: int) -> int:
    if not cursor:
        return 0
    try:
        prefix, _, index = base64.b64decode(str(cursor), validate=True).decode().partition(":")
        start = int(index)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise SlackApiError("invalid_cursor") from None
    if prefix != "next_index" or not 0 <= start <= size:
        raise SlackApiError("invalid_cursor")
    return start


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    """A started `FakeSlack`; stopped after the test."""
    with FakeSlack() as fake:
        yield fake


@pytest.fixture
def slack_client(fake_slack: FakeSlack) -> AsyncWebClient:
    """An `AsyncWebClient` with the bot token, pointed at `fake_slack`."""
    return AsyncWebClient(token=fake_slack.bot_token, base_url=fake_slack.api_url)
