"""Failures in words: one plain sentence for a person, and the HTTP status the API answers with.

Every surface asks here: Slack replies (`bot.services.errors.explain` adds only Slack's own
failures and remedies), the HTTP API, the CLI, and each failed write in an apply's result. No
other module words our error types. Sentences carry Taiga's or Claude's own words where they gave
any, and never a secret or a stack trace.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import anthropic

from agent.budgets import StopReason
from agent.proposal import Proposal
from agent.wording import ended
from storage.bounded import too_long
from taiga.errors import (
    BadCredentials,
    Forbidden,
    NotFound,
    RateLimited,
    TaigaError,
    Unauthorized,
    Unavailable,
    ValidationFailed,
)

_TRY_AGAIN = "Please try again in a few minutes."
CLAUDE_UNAVAILABLE = "Claude is not available right now; please try again in a few minutes."
SOMETHING_WENT_WRONG = "Something went wrong on my side; please try again. (It has been logged.)"


class PlanningError(Exception):
    """The model API failed for good; the message is `model_failure`'s sentence."""


class PlanIncomplete(Exception):
    """Planning stopped before the model finished (a budget, the deadline, an answer cut off),
    so the plan is not applied unless the caller allows a partial plan; the message is the
    whole sentence."""

    def __init__(self, proposal: Proposal) -> None:
        self.proposal = proposal
        super().__init__(
            f"Planning stopped early ({proposal.stop_cause}), so the plan may be incomplete and "
            "was not applied; nothing was written to Taiga."
        )


class PlanNotAllowed(Exception):
    """The approver's role in the Taiga project lacks a permission the plan's writes need; the
    message is the whole sentence."""

    def __init__(self, missing: Iterable[str]) -> None:
        self.missing = sorted(missing)
        super().__init__(
            "Your role in this Taiga project does not allow this plan "
            f"(missing: {', '.join(self.missing)}); nothing was written."
        )


class GoneSinceProposal(NotFound):
    """Something the plan builds on was deleted in Taiga after the plan was made; the message is
    the whole sentence."""


class ChangedSinceProposal(TaigaError):
    """An existing object the plan changes was edited in Taiga after the plan was made, so it is
    left as it is; the message is the whole sentence."""


@dataclass(frozen=True)
class Explanation:
    """`sentence` for a person in Slack; `api_detail` for an HTTP API or CLI caller, who may get
    the provider's own words where a person would not."""

    sentence: str
    http_status: int
    technical: str | None = None

    @property
    def api_detail(self) -> str:
        return self.technical or self.sentence


def explain_failure(
    error: BaseException, *, project: str | None = None, permission: str | None = None
) -> Explanation:
    """What `error` means for the person who asked (`project`, `permission`: what they asked
    about, when known); unknown failures get a generic sentence and 500."""
    if isinstance(error, TaigaError):
        return _taiga(error, project, permission)
    if isinstance(error, anthropic.RateLimitError):
        return Explanation(
            "Claude is rate-limiting requests right now; please try again in a minute.", 502
        )
    if isinstance(error, anthropic.APIError):
        return _model(model_failure(error))
    if isinstance(error, PlanningError):
        return _model(str(error))
    if isinstance(error, PlanNotAllowed):
        return Explanation(str(error), 403)
    if isinstance(error, PlanIncomplete):
        deadline = error.proposal.stopped == StopReason.DEADLINE
        return Explanation(str(error), 504 if deadline else 409)
    refused = too_long(error)
    if refused is not None:
        return Explanation(refused.sentence, 422)
    return Explanation(SOMETHING_WENT_WRONG, 500)


def describe(
    error: BaseException, *, project: str | None = None, permission: str | None = None
) -> str:
    """`explain_failure`'s sentence alone."""
    return explain_failure(error, project=project, permission=permission).sentence


def is_token_rejected(error: BaseException) -> bool:
    """Taiga refused the login itself (not one request): the person must link or log in again."""
    return isinstance(error, BadCredentials | Unauthorized)


def model_failure(exc: anthropic.APIError) -> str:
    """What went wrong talking to Claude, in Claude's own words where it gave any."""
    if isinstance(exc, anthropic.AuthenticationError):
        return "Claude rejected the API key (check ANTHROPIC_API_KEY)."
    if isinstance(exc, anthropic.APIStatusError):
        body = exc.body if isinstance(exc.body, dict) else {}
        error = body.get("error")
        detail = (error.get("message") if isinstance(error, dict) else None) or exc.message
        if exc.status_code == 200 and isinstance(error, dict):  # an `error` event mid-answer
            return f"Claude broke off its answer ({error.get('type')}): {detail}"
        return f"Claude API error {exc.status_code}: {detail}"
    return f"Could not reach Claude: {type(exc).__name__}."


def _retry_after_text(seconds: float) -> str:
    """"in 40 seconds" / "in 3 minutes", rounded up."""
    seconds = max(1, math.ceil(seconds))
    if seconds < 90:
        return f"in {seconds} seconds"
    return f"in {math.ceil(seconds / 60)} minutes"


def _model(detail: str) -> Explanation:
    return Explanation(CLAUDE_UNAVAILABLE, 502, f"The model service failed: {ended(detail)}")


def _not_found_hint(project: str | None) -> str:
    if not project:
        return ""
    return (
        f" I could not find it in project {project}: it does not exist or your account is not a "
        "member."
    )


def _taiga(error: TaigaError, project: str | None, permission: str | None) -> Explanation:
    where = f" in project {project}" if project else ""
    message = error.message
    if isinstance(error, RateLimited):
        return Explanation(
            "Taiga is rate-limiting requests; try again "
            f"{_retry_after_text(error.wait_seconds)}.",
            502,
        )
    if isinstance(error, BadCredentials):
        return Explanation("Taiga did not accept that username and password.", 401)
    if isinstance(error, Unauthorized):
        return Explanation(f"Taiga did not accept the token: {message}", 401)
    if isinstance(error, Forbidden):
        needed = f" (the {permission} permission)" if permission else ""
        return Explanation(
            f"Taiga refused{where}: your account lacks the permission{needed}. {message}", 403
        )
    if isinstance(error, GoneSinceProposal | ChangedSinceProposal):
        return Explanation(message, 409)
    if isinstance(error, NotFound):
        found = ended(message or "not found")
        return Explanation(f"Taiga: {found}{_not_found_hint(project)}", 404)
    if isinstance(error, ValidationFailed) and error.fields:
        parts = [f"{name}: {' '.join(msgs)}" for name, msgs in error.fields.items()]
        return Explanation("Taiga rejected it (" + "; ".join(parts) + ").", 502)
    if isinstance(error, Unavailable):
        return Explanation(f"Taiga failed: {ended(message)} {_TRY_AGAIN}", 502)
    return Explanation(f"Taiga failed: {message or type(error).__name__}", 502)
