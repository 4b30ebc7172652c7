"""Who is acting: a Slack user's linked Taiga account, and keeping its tokens fresh.

Taiga rotates refresh tokens (the old one is refused once used), and several replicas share one
database, so a refresh is a race that must never log the user out:

1. within a process, one `asyncio.Lock` per user serialises refreshes;
2. the new pair is stored by compare-and-set on the old auth token (`replace_tokens`);
3. on a lost race - Taiga refuses our refresh token because another replica already used it, or
   the compare-and-set fails - we re-read the stored tokens and use them if they changed.

Only when none of that yields working tokens is the link dead: `LinkExpired`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from pydantic import SecretStr

from agent.locks import KeyedLocks
from storage import repositories as repo
from storage.crypto import TokenCipher
from storage.db import Database
from taiga.client import RefreshHook, TaigaClient, TaigaSession
from taiga.errors import Unauthorized
from taiga.models import TaigaTokens

log = logging.getLogger(__name__)

# After Taiga refused our refresh token (another replica used it first), how long to wait between
# looks at the database for the tokens that replica is about to store (seconds, ~1.5 s in all).
RACE_WAITS = (0.05, 0.1, 0.2, 0.4, 0.8)


class LinkExpired(Exception):
    """The stored Taiga login can no longer be refreshed; the user must log in again."""

    def __init__(self, team_id: str, user_id: str) -> None:
        super().__init__(
            "Your Taiga login has expired. Run /taiga login to link your account again."
        )
        self.team_id = team_id
        self.user_id = user_id


def to_taiga_tokens(tokens: repo.StoredTokens) -> TaigaTokens:
    return TaigaTokens(
        auth_token=SecretStr(tokens.auth_token),
        refresh=SecretStr(tokens.refresh_token) if tokens.refresh_token else None,
    )


def to_stored_tokens(tokens: TaigaTokens) -> repo.StoredTokens:
    return repo.StoredTokens(
        auth_token=tokens.auth_token.get_secret_value(),
        refresh_token=tokens.refresh.get_secret_value() if tokens.refresh else None,
    )


class LinkRefresher:
    """Refreshes linked users' tokens over the shared database. Build one per process."""

    def __init__(
        self,
        *,
        db: Database,
        cipher: TokenCipher,
        taiga: TaigaClient,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        race_waits: Sequence[float] = RACE_WAITS,
    ) -> None:
        self.db = db
        self.cipher = cipher
        self.taiga = taiga
        self._sleep = sleep
        self._race_waits = tuple(race_waits)
        self._locks: KeyedLocks[tuple[str, str]] = KeyedLocks()

    async def stored(self, team_id: str, user_id: str) -> repo.TaigaLinkView | None:
        return await self.db.run(
            lambda s: repo.get_link(s, cipher=self.cipher, team_id=team_id, user_id=user_id)
        )

    def session(self, link: repo.TaigaLinkView, *, deadline: float | None = None) -> TaigaSession:
        """The one way a linked account becomes a Taiga session: renewed tokens are stored (CAS)."""
        return self.taiga.session(
            to_taiga_tokens(link.tokens),
            on_refresh=self.hook(link.team_id, link.user_id),
            deadline=deadline,
        )

    def hook(self, team_id: str, user_id: str) -> RefreshHook:
        """The `RefreshHook` for one linked user (see `taiga.client.TaigaSession`)."""

        async def on_refresh(stale: TaigaTokens) -> TaigaTokens:
            return await self.refresh(team_id, user_id, stale)

        return on_refresh

    async def refresh(self, team_id: str, user_id: str, stale: TaigaTokens) -> TaigaTokens:
        """Fresh tokens for the user whose `stale` tokens just got a 401, or `LinkExpired`."""
        stale_auth = stale.auth_token.get_secret_value()
        async with self._locks((team_id, user_id)):
            link = await self.stored(team_id, user_id)
            if link is None:
                raise LinkExpired(team_id, user_id)
            if link.auth_token != stale_auth:
                return to_taiga_tokens(link.tokens)  # refreshed by someone else already
            if not link.refresh_token:
                raise LinkExpired(team_id, user_id)
            try:
                fresh = await self.taiga.refresh(link.refresh_token)
            except Unauthorized:
                # Another replica may have used (and so revoked) this refresh token just now.
                return await self._after_lost_race(team_id, user_id, stale_auth)
            replaced = await self.db.run(
                lambda s: repo.replace_tokens(
                    s,
                    cipher=self.cipher,
                    team_id=team_id,
                    user_id=user_id,
                    expected_auth_token=stale_auth,
                    tokens=to_stored_tokens(fresh),
                )
            )
            if replaced:
                log.info("refreshed the Taiga tokens of %s/%s", team_id, user_id)
                return fresh
            return await self._after_lost_race(team_id, user_id, stale_auth)

    async def _after_lost_race(self, team_id: str, user_id: str, stale_auth: str) -> TaigaTokens:
        """Use the tokens another replica stored; it may still be storing them, so look again
        a few times (briefly) before calling the link dead."""
        for wait in (*self._race_waits, None):
            link = await self.stored(team_id, user_id)
            if link is None:
                break
            if link.auth_token != stale_auth:
                log.info("%s/%s was refreshed elsewhere; using those tokens", team_id, user_id)
                return to_taiga_tokens(link.tokens)
            if wait is not None:
                await self._sleep(wait)
        log.info("the Taiga link of %s/%s can no longer be refreshed", team_id, user_id)
        raise LinkExpired(team_id, user_id)


@dataclass
class RequestTokens:
    """Tokens a caller handed us (HTTP API): refreshed in memory, handed back, never stored."""

    taiga: TaigaClient
    initial: TaigaTokens
    current: TaigaTokens = field(init=False)
    refreshed: bool = field(default=False, init=False)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        self.current = self.initial

    def session(self, *, deadline: float | None = None) -> TaigaSession:
        hook = self.refresh if self.initial.refresh is not None else None
        return self.taiga.session(self.current, on_refresh=hook, deadline=deadline)

    async def refresh(self, stale: TaigaTokens) -> TaigaTokens:
        async with self._lock:
            if self.current.auth_token.get_secret_value() != stale.auth_token.get_secret_value():
                return self.current
            if self.current.refresh is None:
                raise Unauthorized("The Taiga token has expired and no refresh token was given.")
            self.current = await self.taiga.refresh(self.current.refresh.get_secret_value())
            self.refreshed = True
            return self.current
