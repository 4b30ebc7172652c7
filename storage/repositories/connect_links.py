"""One-time links to the connect page: minted for one Slack user, claimed at most once.

Only the sha256 of a link's token is stored. `claim_connect_link` is one conditional UPDATE, so
among concurrent requests (other replicas too) exactly one claims a link.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum

import sqlalchemy as sa
from sqlmodel import Session, col

from storage.models import ConnectLink, UTCDateTime


class LinkState(Enum):
    USABLE = "usable"
    USED = "used"
    EXPIRED = "expired"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class ConnectLinkView:
    state: LinkState
    team_id: str = ""
    user_id: str = ""


def create_connect_link(
    session: Session, *, token_hash: str, team_id: str, user_id: str, now: datetime,
    expires_at: datetime,
) -> None:
    session.add(
        ConnectLink(
            token_hash=token_hash, slack_team_id=team_id, slack_user_id=user_id,
            created_at=now, expires_at=expires_at,
        )
    )
    session.flush()


def read_connect_link(session: Session, *, token_hash: str, now: datetime) -> ConnectLinkView:
    row = session.get(ConnectLink, token_hash, populate_existing=True)
    if row is None:
        return ConnectLinkView(LinkState.UNKNOWN)
    if row.used_at is not None:
        state = LinkState.USED
    elif row.expires_at <= now:
        state = LinkState.EXPIRED
    else:
        state = LinkState.USABLE
    return ConnectLinkView(state, row.slack_team_id, row.slack_user_id)


def claim_connect_link(session: Session, *, token_hash: str, now: datetime) -> bool:
    """Mark the link used if it still is usable; True only for the one caller that did."""
    claimed = session.execute(
        _usable(token_hash, now).values(used_at=now).returning(sa.literal(True))
    ).first()
    return claimed is not None


def count_failed_attempt(
    session: Session, *, token_hash: str, now: datetime, allowed: int
) -> bool:
    """Count a wrong password against the link; the `allowed`-th one uses the link up. True if
    the link is still usable afterwards."""
    attempts = col(ConnectLink.failed_attempts) + 1
    session.execute(
        _usable(token_hash, now).values(
            failed_attempts=attempts,
            used_at=sa.case(
                (attempts >= allowed, sa.literal(now, type_=UTCDateTime())), else_=sa.null()
            ),
        )
    )
    return read_connect_link(session, token_hash=token_hash, now=now).state is LinkState.USABLE


def prune_connect_links(session: Session, *, before: datetime) -> int:
    """Forget links that expired before `before`."""
    result = session.execute(
        sa.delete(ConnectLink)
        .where(col(ConnectLink.expires_at) < before)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def _usable(token_hash: str, now: datetime) -> sa.Update:
    return (
        sa.update(ConnectLink)
        .where(
            col(ConnectLink.token_hash) == token_hash,
            col(ConnectLink.used_at).is_(None),
            col(ConnectLink.expires_at) > now,
        )
        .execution_options(synchronize_session=False)
    )
