"""Refreshing a linked user's Taiga tokens over the shared database, across replicas."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from agent.identity import LinkExpired, LinkRefresher, to_taiga_tokens
from storage import repositories as repo
from storage.crypto import TokenCipher
from storage.db import Database
from taiga.client import TaigaClient, TaigaSession
from taiga.errors import RateLimited
from taiga.models import TaigaTokens
from tests.peers.clock import FakeClock
from tests.peers.fake_taiga import ALICE_ID, FakeTaiga

TEAM, USER = "T1", "U_ALICE"


async def link_alice(db: Database, cipher: TokenCipher, fake: FakeTaiga) -> dict[str, str]:
    tokens = fake.login_tokens("alice")
    await db.run(
        lambda s: repo.save_link(
            s,
            cipher=cipher,
            team_id=TEAM,
            user_id=USER,
            taiga_user_id=ALICE_ID,
            taiga_username="alice",
            tokens=repo.StoredTokens(tokens["auth_token"], tokens["refresh"]),
        )
    )
    return tokens


async def stored(db: Database, cipher: TokenCipher) -> repo.StoredTokens:
    link = await db.run(lambda s: repo.get_link(s, cipher=cipher, team_id=TEAM, user_id=USER))
    assert link is not None
    return link.tokens


async def session_of(replica: Replica) -> TaigaSession:
    """Alice's Taiga session on `replica`, built the way the bot builds it."""
    link = await replica.refresher.stored(TEAM, USER)
    assert link is not None
    return replica.refresher.session(link)


def refreshes(fake: FakeTaiga) -> int:
    return len(fake.requests_to("POST", "/auth/refresh"))


class Replica:
    """One process's view: its own database engine, Taiga client and refresher."""

    def __init__(self, url: str, cipher: TokenCipher, fake: FakeTaiga, **kwargs: Any) -> None:
        self.db = Database(url)
        self.taiga = TaigaClient(fake.api_url, clock=FakeClock())
        self.refresher = LinkRefresher(db=self.db, cipher=cipher, taiga=self.taiga, **kwargs)

    async def aclose(self) -> None:
        await self.taiga.aclose()
        self.db.dispose()


@pytest.fixture
def url(sqlite_database: Database) -> Iterator[str]:
    yield sqlite_database.url.render_as_string(hide_password=False)


@pytest.fixture
async def replica(url: str, cipher: TokenCipher, fake_taiga: FakeTaiga) -> AsyncIterator[Replica]:
    one = Replica(url, cipher, fake_taiga)
    try:
        yield one
    finally:
        await one.aclose()


@pytest.mark.anyio
async def test_an_expired_access_token_is_refreshed_and_the_new_pair_stored(
    replica: Replica, cipher: TokenCipher, fake_taiga: FakeTaiga
) -> None:
    old = await link_alice(replica.db, cipher, fake_taiga)
    fake_taiga.expire_access_tokens("alice")
    session = await session_of(replica)

    me = await session.me()

    assert me.username == "alice"
    now = await stored(replica.db, cipher)
    assert now.auth_token != old["auth_token"] and now.refresh_token != old["refresh"]
    assert session.tokens.auth_token.get_secret_value() == now.auth_token
    assert refreshes(fake_taiga) == 1


@pytest.mark.anyio
async def test_two_replicas_refreshing_at_once_keep_the_user_logged_in(
    url: str, cipher: TokenCipher, fake_taiga: FakeTaiga
) -> None:
    replicas = [Replica(url, cipher, fake_taiga) for _ in range(2)]
    try:
        await link_alice(replicas[0].db, cipher, fake_taiga)
        fake_taiga.expire_access_tokens("alice")
        sessions = [await session_of(r) for r in replicas]

        users = await asyncio.gather(*(s.me() for s in sessions))

        assert [u.username for u in users] == ["alice", "alice"]
        final = await stored(replicas[0].db, cipher)
        assert {s.tokens.auth_token.get_secret_value() for s in sessions} == {final.auth_token}
        # And the stored pair keeps working: its refresh token was not burnt by the loser.
        fake_taiga.expire_access_tokens("alice")
        again = await session_of(replicas[1])
        assert (await again.me()).username == "alice"
    finally:
        for r in replicas:
            await r.aclose()


@pytest.mark.anyio
async def test_a_refresh_token_already_used_by_another_replica_yields_that_replicas_tokens(
    url: str, cipher: TokenCipher, fake_taiga: FakeTaiga
) -> None:
    """Deterministic interleaving: the other replica refreshed at Taiga first and stores its
    pair only while we wait after Taiga refused our (now rotated) refresh token."""
    other = Replica(url, cipher, fake_taiga)
    waits: list[float] = []
    old = await link_alice(other.db, cipher, fake_taiga)
    winner = await other.taiga.refresh(old["refresh"])

    async def other_replica_stores_meanwhile(seconds: float) -> None:
        waits.append(seconds)
        await other.db.run(
            lambda s: repo.replace_tokens(
                s,
                cipher=cipher,
                team_id=TEAM,
                user_id=USER,
                expected_auth_token=old["auth_token"],
                tokens=repo.StoredTokens(
                    winner.auth_token.get_secret_value(),
                    winner.refresh.get_secret_value() if winner.refresh else None,
                ),
            )
        )

    me = Replica(url, cipher, fake_taiga, sleep=other_replica_stores_meanwhile)
    try:
        fresh = await me.refresher.refresh(TEAM, USER, TaigaTokens(**old))
    finally:
        await me.aclose()
        await other.aclose()

    assert fresh.auth_token.get_secret_value() == winner.auth_token.get_secret_value()
    assert len(waits) == 1
    assert refreshes(fake_taiga) == 2  # the other replica's, then ours (refused)


@pytest.mark.anyio
async def test_a_lost_compare_and_set_uses_what_the_other_replica_stored(
    replica: Replica, cipher: TokenCipher, fake_taiga: FakeTaiga
) -> None:
    old = await link_alice(replica.db, cipher, fake_taiga)
    relinked: dict[str, str] = {}

    class RelinkDuringRefresh(TaigaClient):
        async def refresh(self, refresh_token: str) -> TaigaTokens:
            tokens = await super().refresh(refresh_token)
            relinked.update(await link_alice(replica.db, cipher, fake_taiga))  # /taiga login
            return tokens

    taiga = RelinkDuringRefresh(fake_taiga.api_url, clock=FakeClock())
    refresher = LinkRefresher(db=replica.db, cipher=cipher, taiga=taiga)
    try:
        fresh = await refresher.refresh(TEAM, USER, TaigaTokens(**old))
    finally:
        await taiga.aclose()

    assert fresh.auth_token.get_secret_value() == relinked["auth_token"]
    assert (await stored(replica.db, cipher)).auth_token == relinked["auth_token"]


@pytest.mark.anyio
async def test_concurrent_refreshes_in_one_process_call_taiga_once(
    replica: Replica, cipher: TokenCipher, fake_taiga: FakeTaiga
) -> None:
    await link_alice(replica.db, cipher, fake_taiga)
    fake_taiga.expire_access_tokens("alice")
    sessions = [await session_of(replica) for _ in range(3)]

    await asyncio.gather(*(s.me() for s in sessions))

    assert refreshes(fake_taiga) == 1


@pytest.mark.anyio
async def test_a_dead_link_raises_link_expired(
    url: str, cipher: TokenCipher, fake_taiga: FakeTaiga
) -> None:
    waits: list[float] = []

    async def no_wait(seconds: float) -> None:
        waits.append(seconds)

    replica = Replica(url, cipher, fake_taiga, sleep=no_wait)
    try:
        await link_alice(replica.db, cipher, fake_taiga)
        fake_taiga.expire_access_tokens("alice")
        fake_taiga.expire_refresh_tokens("alice")
        session = await session_of(replica)

        with pytest.raises(LinkExpired) as raised:
            await session.me()
    finally:
        await replica.aclose()

    assert "/taiga login" in str(raised.value)
    assert waits  # it looked again before giving up



@pytest.mark.anyio
async def test_tokens_never_show_in_reprs(
    replica: Replica, cipher: TokenCipher, fake_taiga: FakeTaiga
) -> None:
    raw = await link_alice(replica.db, cipher, fake_taiga)
    tokens = to_taiga_tokens(await stored(replica.db, cipher))

    shown = repr(tokens) + repr(await replica.refresher.stored(TEAM, USER))

    assert raw["auth_token"] not in shown and raw["refresh"] not in shown


@pytest.mark.anyio
async def test_a_tripped_login_fail_throttle_is_rate_limited_not_a_dead_link(
    replica: Replica, cipher: TokenCipher, fake_taiga: FakeTaiga
) -> None:
    """Taiga throttles /auth/refresh after login failures (e.g. other replicas' lost races):
    that says nothing about this user's refresh token, so the link must stay usable."""
    old = await link_alice(replica.db, cipher, fake_taiga)
    fake_taiga.expire_access_tokens("alice")
    fake_taiga.limit_login_failures(0)
    session = await session_of(replica)

    with pytest.raises(RateLimited):
        await session.me()

    assert (await stored(replica.db, cipher)).refresh_token == old["refresh"]
    fake_taiga.clear_faults()
    assert (await (await session_of(replica)).me()).username == "alice"
