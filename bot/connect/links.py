"""One-time connect links: a random token in the URL, only its sha256 in the database."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlmodel import Session

from bot.services.core import Services
from storage import repositories as repo

LINK_LIFETIME = timedelta(minutes=10)
# Links are forgotten a day after they expire (a used or expired link still says so until then).
LINK_MEMORY = timedelta(days=1)
TOKEN_BYTES = 32


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def connect_path(token: str) -> str:
    return f"/connect/{token}"


async def mint_connect_url(services: Services, *, team_id: str, user_id: str) -> str:
    """A new link for this Slack user to the connect page, valid for `LINK_LIFETIME`."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    now = services.now()
    digest = token_hash(token)

    def create(session: Session) -> None:
        repo.prune_connect_links(session, before=now - LINK_MEMORY)
        repo.create_connect_link(
            session, token_hash=digest, team_id=team_id, user_id=user_id, now=now,
            expires_at=now + LINK_LIFETIME,
        )

    await services.db.run(create)
    return services.settings.public_url + connect_path(token)
