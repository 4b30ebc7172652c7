"""Linked accounts: a Slack user's Taiga account and its tokens, stored encrypted only.

`save_link` is one race-safe upsert; `replace_tokens` is a compare-and-set on the stored auth
token (row locked on PostgreSQL), so two refreshes of one link never both win.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from storage.crypto import TokenCipher
from storage.models import TaigaLink, utcnow
from storage.repositories.inserts import upsert


@dataclass(frozen=True, slots=True)
class StoredTokens:
    """A Taiga token pair in plaintext; never shown in reprs."""

    auth_token: str = field(repr=False)
    refresh_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class TaigaLinkView:
    """A linked account with its tokens decrypted; never shows the tokens in reprs."""

    id: int
    team_id: str
    user_id: str
    taiga_user_id: int
    taiga_username: str
    taiga_full_name: str | None
    auth_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    created_at: datetime
    updated_at: datetime

    @property
    def tokens(self) -> StoredTokens:
        return StoredTokens(auth_token=self.auth_token, refresh_token=self.refresh_token)


def save_link(
    session: Session,
    *,
    cipher: TokenCipher,
    team_id: str,
    user_id: str,
    taiga_user_id: int,
    taiga_username: str,
    tokens: StoredTokens,
    taiga_full_name: str | None = None,
) -> TaigaLinkView:
    """Create or replace the user's link; the tokens are stored encrypted only."""
    now = utcnow()
    changes: dict[str, Any] = {
        "taiga_user_id": taiga_user_id,
        "taiga_username": taiga_username,
        "taiga_full_name": taiga_full_name,
        "auth_token_enc": cipher.encrypt(tokens.auth_token),
        "refresh_token_enc": (
            cipher.encrypt(tokens.refresh_token) if tokens.refresh_token else None
        ),
        "updated_at": now,
    }
    upsert(
        session,
        TaigaLink(slack_team_id=team_id, slack_user_id=user_id, created_at=now, **changes),
        key=["slack_team_id", "slack_user_id"],
        changes=changes,
    )
    row = _link_row(session, team_id, user_id)
    assert row is not None
    return _link_view(row, cipher)


def get_link(
    session: Session, *, cipher: TokenCipher, team_id: str, user_id: str
) -> TaigaLinkView | None:
    statement = select(TaigaLink).where(
        TaigaLink.slack_team_id == team_id, TaigaLink.slack_user_id == user_id
    )
    row = session.exec(statement.execution_options(populate_existing=True)).first()
    return _link_view(row, cipher) if row is not None else None


def linked_taiga_users(session: Session, *, team_id: str, user_ids: list[str]) -> dict[str, int]:
    """The Taiga user id each of these Slack users is linked to (unlinked ones left out); no
    token is decrypted."""
    statement = select(TaigaLink.slack_user_id, TaigaLink.taiga_user_id).where(
        TaigaLink.slack_team_id == team_id, TaigaLink.slack_user_id.in_(user_ids)  # type: ignore[attr-defined]
    )
    return {slack_id: taiga_id for slack_id, taiga_id in session.exec(statement).all()}


def delete_link(session: Session, *, team_id: str, user_id: str) -> bool:
    """Forget the user's link; True if there was one."""
    result = session.execute(
        sa.delete(TaigaLink)
        .where(TaigaLink.slack_team_id == team_id, TaigaLink.slack_user_id == user_id)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount > 0  # type: ignore[attr-defined]


def replace_tokens(
    session: Session,
    *,
    cipher: TokenCipher,
    team_id: str,
    user_id: str,
    expected_auth_token: str,
    tokens: StoredTokens,
) -> bool:
    """Store `tokens` only if the stored auth token is still `expected_auth_token`.

    False means someone else refreshed (or unlinked) first: re-read with `get_link`.
    """
    row = _link_row(session, team_id, user_id)
    if row is None:
        return False
    current = cipher.decrypt(row.auth_token_enc)
    if not hmac.compare_digest(current.encode("utf-8"), expected_auth_token.encode("utf-8")):
        return False
    row.auth_token_enc = cipher.encrypt(tokens.auth_token)
    row.refresh_token_enc = cipher.encrypt(tokens.refresh_token) if tokens.refresh_token else None
    row.updated_at = utcnow()
    session.add(row)
    session.flush()
    return True


def rotate_all_tokens(session: Session, *, cipher: TokenCipher) -> int:
    """Re-encrypt every stored token under the cipher's first key; returns the links rewritten."""
    rows = session.exec(
        select(TaigaLink)
        .order_by(TaigaLink.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).all()
    for row in rows:
        row.auth_token_enc = cipher.rotate(row.auth_token_enc)
        if row.refresh_token_enc is not None:
            row.refresh_token_enc = cipher.rotate(row.refresh_token_enc)
        session.add(row)
    session.flush()
    return len(rows)


def _link_row(session: Session, team_id: str, user_id: str) -> TaigaLink | None:
    statement = (
        select(TaigaLink)
        .where(TaigaLink.slack_team_id == team_id, TaigaLink.slack_user_id == user_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return session.exec(statement).first()


def _link_view(row: TaigaLink, cipher: TokenCipher) -> TaigaLinkView:
    assert row.id is not None
    return TaigaLinkView(
        id=row.id,
        team_id=row.slack_team_id,
        user_id=row.slack_user_id,
        taiga_user_id=row.taiga_user_id,
        taiga_username=row.taiga_username,
        taiga_full_name=row.taiga_full_name,
        auth_token=cipher.decrypt(row.auth_token_enc),
        refresh_token=(
            cipher.decrypt(row.refresh_token_enc) if row.refresh_token_enc is not None else None
        ),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
