"""Leases on the plans a run is working on (`executing`, `undoing`; see `storage.plan_states`).

A run holds its plan on `LeaseTerms` (its owner id, until when) and its heartbeat renews them
with `renew_lease`. `transition_plan` adds `guard_condition` to a guarded move's
compare-and-set and sets the lease columns with `lease_values`, so a plan leaves a leased state
only by its holder, or by anyone once the lease has lapsed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from storage.models import Plan, UTCDateTime
from storage.plan_states import LEASED_STATES, Guard, Move

_LEASED = sorted(LEASED_STATES)


class LeaseHolderMissing(TypeError):
    """A move that only the lease holder may make was asked for without a holder."""


def lapsed(now: datetime) -> sa.ColumnElement[bool]:
    """The plan's lease has ended by `now` (or nobody holds one)."""
    return sa.or_(Plan.lease_until.is_(None), Plan.lease_until <= now)  # type: ignore[union-attr,operator]


def guard_condition(move: Move, *, holder: str | None, now: datetime) -> sa.ColumnElement[bool]:
    """The WHERE clause that `move.guard` adds for a plan in a leased state."""
    not_leased = Plan.state.not_in(_LEASED)  # type: ignore[attr-defined]
    if move.guard is Guard.HOLDER:
        if holder is None:
            raise LeaseHolderMissing(f"{move.target!r} from a leased state needs the lease holder")
        return sa.or_(not_leased, Plan.lease_owner == holder)
    if move.guard is Guard.LAPSED:
        return sa.or_(not_leased, lapsed(now))
    return sa.true()


def lease_values(move: Move, *, holder: str | None, until: datetime | None) -> dict[str, Any]:
    """The lease columns after `move`: the new holder's for a leased target, else none."""
    if move.target in LEASED_STATES:
        return {"lease_owner": holder, "lease_until": until}
    return {"lease_owner": None, "lease_until": None}


def renew_lease(session: Session, *, plan_id: str, holder: str, until: datetime) -> bool:
    """Extend `holder`'s lease to `until`; False when it no longer holds the plan (another run
    took it over, or the plan left its leased state)."""
    statement = (
        sa.update(Plan)
        .where(
            Plan.id == plan_id,  # type: ignore[arg-type]
            Plan.lease_owner == holder,  # type: ignore[arg-type]
            Plan.state.in_(_LEASED),  # type: ignore[attr-defined]
        )
        .values(lease_until=until)
        .execution_options(synchronize_session=False)
    )
    return session.execute(statement).rowcount == 1  # type: ignore[attr-defined]


def earliest_lease_end(session: Session) -> datetime | None:
    """When the first lease of a Slack plan in a leased state ends (None: no such plan)."""
    earliest = sa.func.min(Plan.lease_until, type_=UTCDateTime)
    statement = select(earliest).where(
        Plan.state.in_(_LEASED),  # type: ignore[attr-defined]
        Plan.slack_message_ts.is_not(None),  # type: ignore[union-attr]
    )
    return session.exec(statement).one()
