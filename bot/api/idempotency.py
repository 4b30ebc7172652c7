"""The `Idempotency-Key` of `POST /agent/run`: a retry with the same key finishes the plan
stored under it instead of planning anew.

The key is stored hashed and scoped by the caller's API key (callers with different keys never
share a plan), next to a digest of the request without its tokens: the same key with a changed
request is refused.
"""

from __future__ import annotations

import hashlib
import json

from sqlmodel import Session

from agent.proposal import Proposal
from agent.service import Idempotency
from bot.api.errors import ApiError
from bot.api.models import AgentRunRequest
from storage import repositories as repo

KEY_IN_USE = (
    "Another request with this Idempotency-Key is still being applied; "
    "send it again once that one has finished."
)


def idempotency_for(key: str, api_key: str, body: AgentRunRequest) -> Idempotency:
    """The key as stored (hashed with the caller's API key) and the request's digest."""
    scope = _sha256(api_key)
    request_fields = body.model_dump(mode="json", exclude={"auth_token", "refresh"})
    if not body.allow_partial:  # requests stored before the field existed keep their digest
        del request_fields["allow_partial"]
    return Idempotency(
        key=_sha256(f"{scope}:{key}"),
        request_digest=_sha256(json.dumps(request_fields, sort_keys=True)),
    )


def stored_plan(session: Session, idempotency: Idempotency) -> tuple[str, Proposal] | None:
    """The id and proposal of the plan stored under the key, if any; a 422 if the key was
    used for another request."""
    plan = repo.plan_for_idempotency_key(session, key=idempotency.key)
    if plan is None or plan.proposal is None:
        return None
    if plan.request_digest != idempotency.request_digest:
        raise ApiError(
            422,
            "This Idempotency-Key was already used for another request; "
            "send a new key with a changed request.",
        )
    return plan.id, Proposal.model_validate(plan.proposal)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
