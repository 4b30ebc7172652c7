"""Failures turned into sentences people understand; never a stack trace, never a secret."""

from __future__ import annotations

import logging
import math

import anthropic
from slack_sdk.errors import SlackApiError

from agent.identity import LinkExpired
from agent.loop import PlanningError
from taiga.errors import (
    BadCredentials,
    Forbidden,
    NotFound,
    RateLimited,
    TaigaError,
    Unauthorized,
    Unavailable,
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
CLAUDE_UNAVAILABLE = "Claude is not available right now; please try again in a few minutes."
TAIGA_UNAVAILABLE = "Taiga is not answering right now; please try again in a few minutes."
SOMETHING_WENT_WRONG = "Something went wrong on my side; please try again. (It has been logged.)"


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


def retry_after_text(seconds: float) -> str:
    seconds = max(1, math.ceil(seconds))
    if seconds < 90:
        return f"in {seconds} seconds"
    return f"in {math.ceil(seconds / 60)} minutes"


def explain(
    error: BaseException, *, project: str | None = None, permission: str | None = None
) -> str:
    """One plain sentence (no mrkdwn; escape it before embedding) for any failure; unknown
    failures get a generic sentence."""
    where = f" in project {project}" if project else ""
    if isinstance(error, UserError):
        return error.text
    if is_link_expired(error):
        return LINK_EXPIRED
    if isinstance(error, SlackApiError) and slack_error_code(error) in {
        "not_in_channel",
        "channel_not_found",
    }:
        return NOT_IN_CHANNEL
    if isinstance(error, RateLimited):
        return f"Taiga is rate-limiting requests; try again {retry_after_text(error.wait_seconds)}."
    if isinstance(error, Forbidden):
        needed = f" (the {permission} permission)" if permission else ""
        return f"Taiga refused{where}: your account lacks the permission{needed}. {error.message}"
    if isinstance(error, NotFound):
        return (
            f"Taiga could not find it{where}: it does not exist or your account is not a "
            f"member. {error.message}"
        )
    if isinstance(error, BadCredentials | Unauthorized):
        return LINK_EXPIRED
    if isinstance(error, Unavailable):
        return TAIGA_UNAVAILABLE
    if isinstance(error, TaigaError):
        return f"Taiga said: {error.message}"
    if isinstance(error, anthropic.RateLimitError):
        return "Claude is rate-limiting requests right now; please try again in a minute."
    if isinstance(error, anthropic.APIError | PlanningError):
        return CLAUDE_UNAVAILABLE
    return SOMETHING_WENT_WRONG


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
