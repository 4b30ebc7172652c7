"""Plans being drafted, claimed in the database so the limits hold across replicas: one per
Slack user per channel, and at most `cap` per workspace.

A claim is one row in one of the workspace's `cap` slots; `INSERT ... ON CONFLICT DO NOTHING`
settles a race for a slot (or for the same user's claim) between replicas. A claim older than
`stale_before` belongs to a process that died mid-draft and no longer counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, select

from storage.models import DraftingClaim
from storage.repositories.inserts import insert_unless_present


@dataclass(frozen=True, slots=True)
class Claimed:
    token: str  # what `release_drafting` and `drafting_in_thread` need


@dataclass(frozen=True, slots=True)
class AlreadyDrafting:
    thread_ts: str | None  # where that plan is drafted (None: its thread is being posted)


@dataclass(frozen=True, slots=True)
class WorkspaceFull:
    drafting: int  # how many plans the workspace is drafting


DraftingOutcome = Claimed | AlreadyDrafting | WorkspaceFull


def claim_drafting(
    session: Session,
    *,
    team_id: str,
    channel_id: str,
    user_id: str,
    thread_ts: str | None,
    cap: int,
    now: datetime,
    stale_before: datetime,
) -> DraftingOutcome:
    """Claim a draft for this user in this channel, unless they have one or the workspace
    drafts `cap` plans already."""
    _forget_stale(session, team_id=team_id, before=stale_before)
    # Stale rows another replica is deleting right now are free too: an insert into such a
    # slot waits for that replica's commit and then goes ahead.
    fresh = (DraftingClaim.slack_team_id == team_id) & (DraftingClaim.claimed_at >= stale_before)
    taken = set(session.exec(select(DraftingClaim.slot).where(fresh)).all())

    def held() -> AlreadyDrafting | None:
        statement = select(DraftingClaim.slack_thread_ts).where(
            fresh,
            DraftingClaim.slack_channel_id == channel_id,
            DraftingClaim.slack_user_id == user_id,
        )
        rows = session.exec(statement).all()
        return AlreadyDrafting(rows[0]) if rows else None

    for slot in [n for n in range(cap) if n not in taken]:
        if (mine := held()) is not None:
            return mine
        row = DraftingClaim(
            slack_team_id=team_id, slot=slot, slack_channel_id=channel_id,
            slack_user_id=user_id, slack_thread_ts=thread_ts, claimed_at=now,
        )
        if insert_unless_present(session, row, key=None):
            return Claimed(row.token)
    return held() or WorkspaceFull(max(cap, len(taken)))


def drafting_in_thread(session: Session, *, team_id: str, token: str, thread_ts: str) -> None:
    """Record the thread of a claimed draft (for a second request's "see the thread")."""
    session.execute(
        sa.update(DraftingClaim)
        .where(DraftingClaim.slack_team_id == team_id, DraftingClaim.token == token)
        .values(slack_thread_ts=thread_ts)
    )


def release_drafting(session: Session, *, team_id: str, token: str) -> None:
    session.execute(
        sa.delete(DraftingClaim)
        .where(DraftingClaim.slack_team_id == team_id, DraftingClaim.token == token)
        .execution_options(synchronize_session=False)
    )


def release_drafting_in_thread(
    session: Session, *, team_id: str, channel_id: str, thread_ts: str
) -> None:
    """Forget the claim of the draft in that thread (its plan was given up for dead)."""
    session.execute(
        sa.delete(DraftingClaim)
        .where(
            DraftingClaim.slack_team_id == team_id,
            DraftingClaim.slack_channel_id == channel_id,
            DraftingClaim.slack_thread_ts == thread_ts,
        )
        .execution_options(synchronize_session=False)
    )


def _forget_stale(session: Session, *, team_id: str, before: datetime) -> None:
    """Delete the workspace's stale claims that no other transaction is deleting right now
    (`SKIP LOCKED` on PostgreSQL), so two replicas clearing them never wait on each other."""
    stale = session.exec(
        select(DraftingClaim.slot)
        .where(DraftingClaim.slack_team_id == team_id, DraftingClaim.claimed_at < before)
        .order_by(DraftingClaim.slot)  # type: ignore[arg-type]
        .with_for_update(skip_locked=True)
    ).all()
    if stale:
        session.execute(
            sa.delete(DraftingClaim)
            .where(
                DraftingClaim.slack_team_id == team_id,
                DraftingClaim.slot.in_(stale),  # type: ignore[attr-defined]
            )
            .execution_options(synchronize_session=False)
        )
