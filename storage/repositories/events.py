"""Delivered Slack events: each event id is answered once, however often Slack retries it."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session

from storage.models import SlackEvent
from storage.repositories.inserts import insert_unless_present


def first_delivery(session: Session, *, event_id: str, now: datetime) -> bool:
    """True only the first time this event id is seen (Slack retries get False)."""
    row = SlackEvent(event_id=event_id, received_at=now)
    return insert_unless_present(session, row, key=["event_id"])


def prune_slack_events(session: Session, *, before: datetime) -> int:
    """Forget event ids received before `before` (Slack retries within minutes)."""
    result = session.execute(
        sa.delete(SlackEvent)
        .where(SlackEvent.received_at < before)  # type: ignore[arg-type]
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
