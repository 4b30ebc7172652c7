"""Plans: create, read, change fields, move state (`transition_plan`) and find those to sweep.

`transition_plan` is one conditional UPDATE (a compare-and-set): among concurrent callers
exactly one moves a plan out of a state. The moves themselves are `storage.plan_states.MOVES`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from storage.models import Plan, UTCDateTime, utcnow
from storage.plan_states import PLAN_STATES, Transition, move_for
from storage.repositories.inserts import insert_unless_present
from storage.repositories.leases import earliest_lease_end, guard_condition, lapsed, lease_values

# Columns that only the repository moves: the id, the state (via transition_plan), version and
# the lease (`storage.repositories.leases`).
_PLAN_FIELDS = frozenset(Plan.model_fields)
_PLAN_GUARDED = frozenset({"id", "state", "version", "lease_owner", "lease_until"})
# Only `storage.repositories.revisions` moves `proposal_version` (with a history row).


class IdempotencyKeyTaken(Exception):
    """Another plan already holds this idempotency key (a concurrent request stored it first)."""


def create_plan(session: Session, **fields: Any) -> Plan:
    """Insert a plan (state defaults to drafting, version to 1) and return it.

    Raises `IdempotencyKeyTaken` when `idempotency_key` is already another plan's.
    """
    unknown = set(fields) - _PLAN_FIELDS
    if unknown:
        raise TypeError(f"Plan has no field(s) {sorted(unknown)}")
    state = fields.get("state", "drafting")
    if state not in PLAN_STATES:
        raise ValueError(f"unknown plan state {state!r}")
    plan = Plan(**fields)
    key = plan.idempotency_key
    if key is None:
        session.add(plan)
        session.flush()
        return plan
    if not insert_unless_present(session, plan, key=["idempotency_key"]):
        raise IdempotencyKeyTaken(key)
    stored = get_plan(session, plan.id)
    assert stored is not None
    return stored


def plan_for_idempotency_key(session: Session, *, key: str) -> Plan | None:
    statement = select(Plan).where(Plan.idempotency_key == key)
    return session.exec(statement.execution_options(populate_existing=True)).first()


def get_plan(session: Session, plan_id: str) -> Plan | None:
    return session.get(Plan, plan_id, populate_existing=True)


def latest_plan_in_thread(
    session: Session, *, team_id: str, channel_id: str, thread_ts: str
) -> Plan | None:
    """The newest plan started in a Slack thread, if any."""
    statement = (
        select(Plan)
        .where(
            Plan.slack_team_id == team_id,
            Plan.slack_channel_id == channel_id,
            Plan.slack_thread_ts == thread_ts,
        )
        .order_by(Plan.created_at.desc())  # type: ignore[attr-defined]
        .limit(1)
    )
    return session.exec(statement.execution_options(populate_existing=True)).first()


def transition_plan(
    session: Session,
    *,
    plan_id: str,
    transition: Transition,
    expected_version: int | None = None,
    expected_proposal_version: int | None = None,
    holder: str | None = None,
    lease_until: datetime | None = None,
    now: datetime | None = None,
    **changes: Any,
) -> bool:
    """Make `transition`: move the plan to its target state only if it is in one of its source
    states (and, with `expected_version`, still at that version: nobody touched it since it was
    read; with `expected_proposal_version`, its proposal is still the version a person saw);
    True iff it moved. Raises `IllegalTransition` for a move not in the table.

    Out of a leased state the move's guard also holds: `holder` still holds the lease, or the
    lease has lapsed by `now` (default: the current time). Into one, `holder` gets the lease
    until `lease_until`; out of one, the lease is cleared.

    One conditional UPDATE (a compare-and-set), so among concurrent callers - other threads,
    other replicas - exactly one wins. Bumps `version`; `changes` are applied in the same UPDATE.
    """
    move = move_for(transition)
    _check_plan_changes(changes)
    now = now or utcnow()
    changes.setdefault("updated_at", now)
    changes.update(lease_values(move, holder=holder, until=lease_until))
    statement = (
        sa.update(Plan)
        .where(
            Plan.id == plan_id,  # type: ignore[arg-type]
            Plan.state.in_(sorted(move.sources)),  # type: ignore[attr-defined]
            guard_condition(move, holder=holder, now=now),
        )
        .values(state=move.target, version=Plan.version + 1, **changes)
        .execution_options(synchronize_session=False)
    )
    if expected_version is not None:
        statement = statement.where(Plan.version == expected_version)  # type: ignore[arg-type]
    if expected_proposal_version is not None:
        statement = statement.where(
            Plan.proposal_version == expected_proposal_version  # type: ignore[arg-type]
        )
    moved = session.execute(statement).rowcount == 1  # type: ignore[attr-defined]
    if moved:
        _reload(session, plan_id)
    return moved


def update_plan(session: Session, *, plan_id: str, **changes: Any) -> bool:
    """Change fields of a plan without moving its state (bumps version); True if it exists."""
    _check_plan_changes(changes)
    changes.setdefault("updated_at", utcnow())
    statement = (
        sa.update(Plan)
        .where(Plan.id == plan_id)  # type: ignore[arg-type]
        .values(version=Plan.version + 1, **changes)
        .execution_options(synchronize_session=False)
    )
    updated = session.execute(statement).rowcount == 1  # type: ignore[attr-defined]
    if updated:
        _reload(session, plan_id)
    return updated


def plans_to_sweep(
    session: Session,
    *,
    approved_before: datetime,
    lapsed_by: datetime,
    expired_by: datetime,
    interrupted_error: str | None = None,
    drafting_before: datetime | None = None,
    limit: int = 20,
) -> list[Plan]:
    """The Slack plans a recovery sweep must act on, least recently touched first, at most
    `limit`:

    - `approved` and not touched since `approved_before` (its apply never started),
    - `executing` or `undoing` whose lease has lapsed by `lapsed_by` (its run died),
    - `partial` with error `interrupted_error`, not touched since `approved_before` (a shutdown
      cancelled its run before it could show anything),
    - `proposed` whose `expires_at` is at or before `expired_by`,
    - `drafting` and started before `drafting_before` (past the planning deadline: its process
      died mid-draft).

    Plans without a Slack message (HTTP API, CLI) are never included.
    """
    due = [
        sa.and_(Plan.state == "approved", Plan.updated_at < approved_before),
        sa.and_(
            Plan.state.in_(["executing", "undoing"]),  # type: ignore[attr-defined]
            lapsed(lapsed_by),
        ),
        sa.and_(Plan.state == "proposed", Plan.expires_at <= expired_by),  # type: ignore[operator]
    ]
    if drafting_before is not None:
        due.append(sa.and_(Plan.state == "drafting", Plan.created_at < drafting_before))
    if interrupted_error is not None:
        due.append(
            sa.and_(
                Plan.state == "partial",
                Plan.error == interrupted_error,
                Plan.updated_at < approved_before,
            )
        )
    statement = (
        select(Plan)
        .where(Plan.slack_message_ts.is_not(None), sa.or_(*due))  # type: ignore[union-attr]
        .order_by(Plan.updated_at, Plan.id)  # type: ignore[arg-type]
        .limit(max(0, limit))
        .execution_options(populate_existing=True)
    )
    return list(session.exec(statement).all())


def next_sweep_due(
    session: Session,
    *,
    approved_grace: timedelta,
    drafting_limit: timedelta,
    interrupted_error: str | None = None,
) -> datetime | None:
    """When the next Slack plan that is not due yet becomes due for `plans_to_sweep`: the first
    lease to end, the first `approved` (or interrupted `partial`) plan to pass the grace, or
    the first `drafting` plan to pass the drafting limit."""
    waiting = [Plan.state == "approved"]
    if interrupted_error is not None:
        waiting.append(sa.and_(Plan.state == "partial", Plan.error == interrupted_error))
    touched = _earliest(session, Plan.updated_at, sa.or_(*waiting))
    started = _earliest(session, Plan.created_at, Plan.state == "drafting")
    moments = [
        earliest_lease_end(session),
        touched and touched + approved_grace,
        started and started + drafting_limit,
    ]
    return min((m for m in moments if m is not None), default=None)


def _earliest(session: Session, column: Any, condition: Any) -> datetime | None:
    """The earliest `column` among the Slack plans matching `condition`."""
    statement = select(sa.func.min(column, type_=UTCDateTime)).where(
        Plan.slack_message_ts.is_not(None), condition  # type: ignore[union-attr]
    )
    return session.exec(statement).one()


def _check_plan_changes(changes: dict[str, Any]) -> None:
    unknown = set(changes) - _PLAN_FIELDS
    if unknown:
        raise TypeError(f"Plan has no field(s) {sorted(unknown)}")
    guarded = set(changes) & _PLAN_GUARDED
    if guarded:
        raise TypeError(f"{sorted(guarded)} cannot be changed here (use transition_plan)")


def _reload(session: Session, plan_id: str) -> None:
    """Reload a plan this session already holds after a bulk UPDATE changed it underneath."""
    cached = session.identity_map.get(sa.inspect(Plan).identity_key_from_primary_key([plan_id]))
    if cached is not None:
        session.refresh(cached)
