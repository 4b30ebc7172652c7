"""Plan versions: each version of a proposal people see, and its history.

A version is made by drafting (1), then by each edit or refinement (+1). Making one is a
compare-and-set on the version the person saw, in the same transaction as its history row, so
two people changing the same version at once cannot both win.
"""

from __future__ import annotations

from typing import Any, Literal

from sqlmodel import Session, select

from storage.models import PlanRevision, utcnow
from storage.plan_states import Transition
from storage.repositories.plans import transition_plan

RevisionKind = Literal["drafted", "edited", "refined"]


def store_first_version(
    session: Session,
    *,
    plan_id: str,
    proposal: dict[str, Any],
    author_slack_id: str | None,
    minutes: str | None = None,
    **changes: Any,
) -> bool:
    """Move a drafting plan to `proposed` with `proposal` as version 1; True iff it moved.
    The minutes it was drafted from are kept as its note, for refining it later."""
    moved = transition_plan(
        session, plan_id=plan_id, transition=Transition.PROPOSE,
        proposal=proposal, proposal_version=1, **changes,
    )
    if moved:
        _record(session, plan_id, 1, "drafted", author_slack_id, minutes, proposal)
    return moved


def store_new_version(
    session: Session,
    *,
    plan_id: str,
    seen_version: int,
    proposal: dict[str, Any],
    kind: RevisionKind,
    author_slack_id: str,
    note: str | None = None,
    **changes: Any,
) -> bool:
    """Replace version `seen_version` of a proposed plan with `proposal` as the next version;
    False when the plan is no longer proposed or someone made another version first."""
    moved = transition_plan(
        session, plan_id=plan_id, transition=Transition.REVISE,
        expected_proposal_version=seen_version,
        proposal=proposal, proposal_version=seen_version + 1, **changes,
    )
    if moved:
        _record(session, plan_id, seen_version + 1, kind, author_slack_id, note, proposal)
    return moved


def drafted_from(session: Session, plan_id: str) -> str | None:
    """The minutes version 1 was drafted from (None for plans from before they were kept)."""
    statement = select(PlanRevision.note).where(
        PlanRevision.plan_id == plan_id, PlanRevision.number == 1
    )
    return session.exec(statement).first()


def revisions_of(session: Session, plan_id: str) -> list[PlanRevision]:
    """The plan's versions, oldest first."""
    statement = (
        select(PlanRevision)
        .where(PlanRevision.plan_id == plan_id)
        .order_by(PlanRevision.number)  # type: ignore[arg-type]
    )
    return list(session.exec(statement).all())


def _record(
    session: Session,
    plan_id: str,
    number: int,
    kind: RevisionKind,
    author: str | None,
    note: str | None,
    proposal: dict[str, Any],
) -> None:
    session.add(
        PlanRevision(
            plan_id=plan_id, number=number, kind=kind, author_slack_id=author, note=note,
            proposal=proposal, created_at=utcnow(),
        )
    )
    session.flush()
