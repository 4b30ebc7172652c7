"""Which signed Slack request bodies the app can read, checked before Bolt sees them.

Bolt parses a body while building its request, before any middleware, and our listeners read
the fields Slack always sends; a body that is not UTF-8, whose `payload` is not JSON, or whose
fields have other shapes would fail there with a 500. Such a body is refused with a sentence:
400 when it is signed (a broken sender), 401 like Bolt's own refusal when it is not."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import Response
from pydantic import BaseModel, ConfigDict, Field, model_validator
from slack_bolt.request.internals import parse_body

UNREADABLE = "This request is not a Slack payload the app can read."
NOT_SIGNED = '{"error": "invalid request"}'
SIGNATURE_MAX_AGE = 5 * 60

Id = Annotated[str, Field(min_length=1, max_length=255)]
# Workspace, channel and user ids: Slack's are about a dozen characters; our columns hold 32.
SlackId = Annotated[str, Field(min_length=1, max_length=32)]
Url = Annotated[str, Field(pattern=r"^https?://[^\s/]+/")]


class _Shape(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)


class _Ref(_Shape):
    id: SlackId
    team_id: SlackId | None = None
    enterprise_id: SlackId | None = None


class _Authorization(_Shape):
    team_id: SlackId | None = None
    enterprise_id: SlackId | None = None
    user_id: SlackId | None = None
    is_enterprise_install: bool | None = None


class _Message(_Shape):
    user: str | None = None
    thread_ts: str | None = None
    ts: str | None = None
    blocks: list[dict[str, Any]] | None = None


class _Option(_Shape):
    value: str


class _Action(_Shape):
    action_id: Id
    block_id: str | None = None
    value: str | None = None
    selected_options: list[_Option] | None = None


class _ViewState(_Shape):
    values: dict[str, dict[str, dict[str, Any]]] = Field(default_factory=dict)


class _View(_Shape):
    id: str | None = None
    callback_id: str | None = None
    private_metadata: str | None = None
    team_id: SlackId | None = None
    app_installed_team_id: SlackId | None = None
    state: _ViewState | None = None


class _Event(_Shape):
    type: str
    user: SlackId | None = None
    channel: SlackId | None = None
    ts: str | None = None
    thread_ts: str | None = None
    text: str | None = None
    team: SlackId | None = None
    user_team: SlackId | None = None
    edited: dict[str, Any] | None = None
    item: dict[str, Any] | None = None
    message: _Message | None = None

    @model_validator(mode="after")
    def _mention_has_its_place(self) -> _Event:
        if self.type == "app_mention" and not (self.channel and self.ts):
            raise ValueError("an app_mention names its channel and ts")
        return self


class SlackBody(_Shape):
    """The fields Bolt's context and our listeners read, with the shapes Slack sends them in."""

    type: str | None = None
    command: str | None = None
    team: _Ref | SlackId | None = None
    user: _Ref | SlackId | None = None
    channel: _Ref | SlackId | None = None
    enterprise: _Ref | SlackId | None = None
    authorizations: list[_Authorization] | None = None
    team_id: SlackId | None = None
    user_id: SlackId | None = None
    channel_id: SlackId | None = None
    enterprise_id: SlackId | None = None
    thread_ts: str | None = None
    is_ext_shared_channel: bool | None = None
    response_url: Url | None = None
    response_urls: list[dict[str, Any]] | None = None
    trigger_id: str | None = None
    container: dict[str, Any] | None = None
    message: _Message | None = None
    view: _View | None = None
    event: _Event | None = None
    actions: list[_Action] | None = None
    state: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _kind_has_its_fields(self) -> SlackBody:
        missing = {
            "command": self.command is not None
            and not (self.team_id and self.user_id and self.channel_id and self.response_url),
            "block_actions": self.type == "block_actions" and not (self.user and self.actions),
            "view_submission": self.type == "view_submission"
            and not (self.user and self.view is not None),
            "event_callback": self.type == "event_callback" and self.event is None,
        }
        if any(missing.values()):
            raise ValueError("a field Slack always sends is missing")
        return self


def readable(body: bytes, content_type: str | None) -> bool:
    """Whether Bolt and our listeners can read `body` (signature not checked here)."""
    try:
        parsed = parse_body(body.decode("utf-8"), content_type)
        SlackBody.model_validate(parsed)
    except ValueError:  # UnicodeDecodeError, JSONDecodeError and ValidationError are ValueErrors
        return False
    return True


def refuse_unreadable(
    body: bytes, headers: Mapping[str, str], signing_secret: str
) -> Response:
    if is_signed(body, headers, signing_secret):
        return Response(UNREADABLE, status_code=400, media_type="text/plain")
    return Response(NOT_SIGNED, status_code=401, media_type="application/json")


def is_signed(body: bytes, headers: Mapping[str, str], signing_secret: str) -> bool:
    """Slack's v0 signature over the raw bytes, sent within the last five minutes (the SDK's
    verifier decodes the body first, which fails on bytes that are not UTF-8)."""
    timestamp = headers.get("x-slack-request-timestamp", "")
    signature = headers.get("x-slack-signature", "")
    fresh = timestamp.isascii() and timestamp.isdigit() and (
        abs(time.time() - int(timestamp)) <= SIGNATURE_MAX_AGE
    )
    if not fresh:
        return False
    base = b"v0:" + timestamp.encode() + b":" + body
    expected = "v0=" + hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), signature.encode())
