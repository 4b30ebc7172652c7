"""The write ledger: one row per Taiga write of a plan, pending before it is sent, done after.

`claim_actions` inserts race-safely, so concurrent runs of one plan in other processes agree
on which of them claimed each write.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, select

from storage.models import WriteLedger
from storage.repositories.inserts import insert_unless_present


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One write of a plan. `claimed_now` is True only for the caller whose insert created it."""

    plan_id: str
    action_key: str
    state: str
    taiga_id: int | None
    taiga_ref: int | None
    attempted_at: datetime
    done_at: datetime | None
    actor_taiga_id: int | None = None
    taiga_version: int | None = None
    previous_milestone_id: int | None = None
    external_reference: tuple[str, ...] | None = None
    claimed_now: bool = False

    @property
    def done(self) -> bool:
        return self.state == "done"


def claim_actions(
    session: Session,
    *,
    plan_id: str,
    action_keys: Sequence[str],
    now: datetime,
    actor: int,
    references: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, LedgerEntry]:
    """Record each action as pending, sent by Taiga user `actor` with the `external_reference`
    in `references` (by key; none for the others), unless it is already recorded; returns the
    rows by key. One transaction for a whole phase of writes.

    `claimed_now` tells the one caller whose insert created a row; everyone else gets the
    existing row (pending: a previous attempt may have reached Taiga; done: skip it).
    """
    existing = _ledger_rows(session, plan_id, action_keys)
    entries: dict[str, LedgerEntry] = {}
    for key in action_keys:
        row = existing.get(key)
        if row is None:
            reference = _stored((references or {}).get(key))
            entries[key] = _claim_one(session, plan_id, key, now, actor, reference)
        else:
            entries[key] = _entry(row)
    return entries


def retake_actions(
    session: Session,
    *,
    plan_id: str,
    action_keys: Collection[str],
    now: datetime,
    actor: int,
    references: Mapping[str, Sequence[str]] | None = None,
) -> list[LedgerEntry]:
    """Stamp pending actions that are about to be sent again with the new attempt's time,
    sender and `external_reference` (the caller found no trace of the earlier attempt in
    Taiga); returns those rows."""
    rows = session.exec(
        select(WriteLedger)
        .where(
            WriteLedger.plan_id == plan_id,
            WriteLedger.action_key.in_(list(action_keys)),  # type: ignore[attr-defined]
            WriteLedger.state == "pending",
        )
        .order_by(WriteLedger.id)  # type: ignore[arg-type]
        .with_for_update()
        .execution_options(populate_existing=True)
    ).all()
    for row in rows:
        row.attempted_at = now
        row.actor_taiga_id = actor
        row.external_reference = _stored((references or {}).get(row.action_key))
        session.add(row)
    session.flush()
    return [_entry(row) for row in rows]


def complete_action(
    session: Session,
    *,
    plan_id: str,
    action_key: str,
    taiga_id: int | None,
    taiga_ref: int | None,
    now: datetime,
    taiga_version: int | None = None,
    previous_milestone_id: int | None = None,
) -> LedgerEntry:
    """Mark a claimed action done with the Taiga object it wrote (its `version` after the write
    and, for a move, the sprint the story came from)."""
    row = _ledger_row(session, plan_id, action_key)
    if row is None:
        raise LookupError(f"action {action_key!r} of plan {plan_id} was never claimed")
    row.state = "done"
    row.taiga_id = taiga_id
    row.taiga_ref = taiga_ref
    row.taiga_version = taiga_version
    row.previous_milestone_id = previous_milestone_id
    row.done_at = now
    session.add(row)
    session.flush()
    return _entry(row)


def ledger_for_plan(session: Session, plan_id: str) -> dict[str, LedgerEntry]:
    """Every recorded action of the plan by action key, in claim order."""
    statement = (
        select(WriteLedger)
        .where(WriteLedger.plan_id == plan_id)
        .order_by(WriteLedger.id)  # type: ignore[arg-type]
        .execution_options(populate_existing=True)
    )
    return {row.action_key: _entry(row) for row in session.exec(statement).all()}


def _claim_one(
    session: Session,
    plan_id: str,
    action_key: str,
    now: datetime,
    actor: int,
    reference: list[str] | None,
) -> LedgerEntry:
    row = WriteLedger(
        plan_id=plan_id,
        action_key=action_key,
        state="pending",
        attempted_at=now,
        actor_taiga_id=actor,
        external_reference=reference,
    )
    if insert_unless_present(session, row, key=["plan_id", "action_key"]):
        return _entry(row, claimed_now=True)
    existing = _ledger_row(session, plan_id, action_key)  # inserted by a concurrent caller
    assert existing is not None
    return _entry(existing)


def _ledger_rows(
    session: Session, plan_id: str, action_keys: Collection[str]
) -> dict[str, WriteLedger]:
    statement = (
        select(WriteLedger)
        .where(
            WriteLedger.plan_id == plan_id,
            WriteLedger.action_key.in_(list(action_keys)),  # type: ignore[attr-defined]
        )
        .execution_options(populate_existing=True)
    )
    return {row.action_key: row for row in session.exec(statement).all()}


def _ledger_row(session: Session, plan_id: str, action_key: str) -> WriteLedger | None:
    statement = (
        select(WriteLedger)
        .where(WriteLedger.plan_id == plan_id, WriteLedger.action_key == action_key)
        .execution_options(populate_existing=True)
    )
    return session.exec(statement).first()


def _stored(reference: Sequence[str] | None) -> list[str] | None:
    return list(reference) if reference is not None else None


def _entry(row: WriteLedger, *, claimed_now: bool = False) -> LedgerEntry:
    return LedgerEntry(
        plan_id=row.plan_id,
        action_key=row.action_key,
        state=row.state,
        taiga_id=row.taiga_id,
        taiga_ref=row.taiga_ref,
        attempted_at=row.attempted_at,
        done_at=row.done_at,
        actor_taiga_id=row.actor_taiga_id,
        taiga_version=row.taiga_version,
        previous_milestone_id=row.previous_milestone_id,
        external_reference=(
            tuple(row.external_reference) if row.external_reference is not None else None
        ),
        claimed_now=claimed_now,
    )
