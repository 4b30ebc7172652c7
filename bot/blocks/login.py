"""The `/taiga login` modal, its block and action ids, and the view that confirms a link."""

from __future__ import annotations

from typing import Any

from slack_sdk.models.blocks import (
    Block,
    DividerBlock,
    InputBlock,
    MarkdownTextObject,
    PlainTextInputElement,
    PlainTextObject,
    SectionBlock,
)
from slack_sdk.models.views import View

from bot.slack_text import escape_mrkdwn

LOGIN_CALLBACK_ID = "taiga_login"
# Each field's block id is also its element's action id.
USERNAME, PASSWORD, AUTH_TOKEN, REFRESH_TOKEN = "username", "password", "auth_token", "refresh"
_TITLE = "Link Taiga"


def login_view() -> dict[str, Any]:
    """The `/taiga login` modal: username + password, or an auth token (+ refresh token)."""
    intro = (
        "Sign in with your Taiga username (or e-mail) and password, *or* paste "
        "an auth token. Only the tokens Taiga returns are kept, encrypted; "
        "your password is never stored."
    )
    return View(
        type="modal",
        callback_id=LOGIN_CALLBACK_ID,
        title=PlainTextObject(text=_TITLE),
        submit=PlainTextObject(text="Sign in"),
        close=PlainTextObject(text="Cancel"),
        blocks=[
            SectionBlock(text=MarkdownTextObject(text=intro)),
            _input(USERNAME, "Taiga username or e-mail"),
            _input(PASSWORD, "Password", "Sent once to Taiga to get a token; not stored."),
            DividerBlock(),
            _input(AUTH_TOKEN, "…or an auth token"),
            _input(REFRESH_TOKEN, "Refresh token (optional)", "Lets the bot renew the token."),
        ],
    ).to_dict()


def linked_view(username: str) -> dict[str, Any]:
    """What the modal turns into once the account is linked."""
    linked = f":white_check_mark: Linked to Taiga as *{escape_mrkdwn(username)}*."
    return View(
        type="modal",
        callback_id=f"{LOGIN_CALLBACK_ID}_done",
        title=PlainTextObject(text=_TITLE),
        close=PlainTextObject(text="Done"),
        blocks=[SectionBlock(text=MarkdownTextObject(text=linked))],
    ).to_dict()


def _input(block_id: str, label: str, hint: str | None = None) -> Block:
    return InputBlock(
        block_id=block_id,
        optional=True,
        label=PlainTextObject(text=label),
        element=PlainTextInputElement(action_id=block_id),
        hint=PlainTextObject(text=hint) if hint else None,
    )
