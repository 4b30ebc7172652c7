"""Failures turned into sentences people understand; never a stack trace, never a secret."""

from __future__ import annotations

import logging

import anthropic
from slack_sdk.errors import SlackApiError

from agent.errors import PlanningError, describe, is_token_rejected
from agent.executor.lease import LeaseLost
from agent.identity import LinkExpired
from taiga.errors import (
    TaigaError,
)

logger = logging.getLogger(__name__)

BOT_NAME = "Taiga Planner"

NOT_LINKED = (
    "Your Slack account is not linked to Taiga yet. Run /taiga login to link it "
    "(the bot keeps only an access token, never your password)."
)
LINK_EXPIRED = (
    "Your Taiga link has expired (Taiga refused to renew its token). "
    "Run /taiga login to link your account again."
)
NO_PROJECT = (
    "This channel has no default Taiga project yet. Set one with "
    "/taiga project followed by the project's slug or URL."
)
NOT_IN_CHANNEL = (
    f"I am not in this channel. Invite me with /invite @{BOT_NAME} and try again."
)
NOT_IN_CONVERSATION = (
    "I cannot post in this conversation. Run /taiga plan in a channel I am in, or mention me "
    "there."
)

DATABASE_AWAY = (
    f"{BOT_NAME} lost its database while applying this plan, so it stopped writing to Taiga. "
    "It finishes the plan by itself once the database is back; you can also press Retry."
)


class UserError(Exception):
    """A failure with a sentence meant for the person who asked."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


def minutes_too_long(length: int, limit: int) -> UserError:
    return UserError(
        f"The minutes are {length:,} characters long; the limit is {limit:,}. "
        "Split them or trim them and try again."
    )


def explain(
    error: BaseException, *, project: str | None = None, permission: str | None = None
) -> str:
    """One plain sentence (no mrkdwn; escape it before embedding) for any failure: Slack's own
    failures and remedies here, everything else in `agent.errors`."""
    if isinstance(error, UserError):
        return error.text
    if isinstance(error, LeaseLost):
        return DATABASE_AWAY
    if is_link_expired(error) or is_token_rejected(error):
        return LINK_EXPIRED
    if isinstance(error, SlackApiError) and slack_error_code(error) in {
        "not_in_channel",
        "channel_not_found",
    }:
        return NOT_IN_CHANNEL
    return describe(error, project=project, permission=permission)


def is_link_expired(error: BaseException) -> bool:
    """The refresh hook's `LinkExpired`: the stored Taiga link can no longer be renewed."""
    return isinstance(error, LinkExpired)


def not_in_channel_sentence(channel_id: str) -> str:
    """Why the bot cannot post in `channel_id`: a direct message (D…) cannot take an /invite."""
    return NOT_IN_CONVERSATION if channel_id.startswith("D") else NOT_IN_CHANNEL


def slack_error_code(error: SlackApiError) -> str:
    response = getattr(error, "response", None)
    try:
        return str(response["error"]) if response is not None else ""
    except (KeyError, TypeError):
        return ""


def log_failure(message: str, error: BaseException, *, plan_id: str | None = None) -> None:
    """Log a failure with the plan id; tracebacks only for failures we did not expect.

    Our error types keep secrets out of their messages; the SDKs' request objects are not
    logged (only the exception's type and message)."""
    expected = isinstance(
        error, UserError | TaigaError | anthropic.APIError | SlackApiError | PlanningError
    )
    if expected or is_link_expired(error):
        logger.warning(
            "%s (plan %s): %s: %s", message, plan_id or "-", type(error).__name__, error
        )
    else:
        logger.error("%s (plan %s)", message, plan_id or "-", exc_info=error)
