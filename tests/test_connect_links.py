"""One-time connect links in the database: claimed at most once (also by racing replicas),
refused when expired, used up by too many wrong passwords; on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from storage import repositories as repo
from storage.db import Database
from tests.test_storage_repositories import RACERS, _race

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(minutes=5)


def _mint(db: Database, token_hash: str = "h" * 64) -> str:
    db.run_sync(
        lambda s: repo.create_connect_link(
            s, token_hash=token_hash, team_id="T1", user_id="U1", now=NOW,
            expires_at=NOW + timedelta(minutes=10),
        )
    )
    return token_hash


def _state(db: Database, token_hash: str, now: datetime) -> repo.LinkState:
    return db.run_sync(lambda s: repo.read_connect_link(s, token_hash=token_hash, now=now)).state


def test_a_link_is_claimed_once_and_then_reads_as_used(database: Database) -> None:
    digest = _mint(database)
    view = database.run_sync(lambda s: repo.read_connect_link(s, token_hash=digest, now=LATER))
    assert (view.state, view.team_id, view.user_id) == (repo.LinkState.USABLE, "T1", "U1")

    first = database.run_sync(lambda s: repo.claim_connect_link(s, token_hash=digest, now=LATER))
    second = database.run_sync(lambda s: repo.claim_connect_link(s, token_hash=digest, now=LATER))

    assert (first, second) == (True, False)
    assert _state(database, digest, LATER) is repo.LinkState.USED


def test_an_expired_or_unknown_link_cannot_be_claimed(database: Database) -> None:
    digest = _mint(database)
    expired = NOW + timedelta(minutes=10)

    assert _state(database, digest, expired) is repo.LinkState.EXPIRED
    assert not database.run_sync(
        lambda s: repo.claim_connect_link(s, token_hash=digest, now=expired)
    )
    assert _state(database, "x" * 64, LATER) is repo.LinkState.UNKNOWN


def test_racing_claims_of_one_link_have_exactly_one_winner(database: Database) -> None:
    digest = _mint(database)

    won = _race(database, lambda s, _n: repo.claim_connect_link(s, token_hash=digest, now=LATER))

    assert sorted(won) == [False] * (RACERS - 1) + [True]


def test_wrong_passwords_use_the_link_up_at_the_limit(database: Database) -> None:
    digest = _mint(database)

    def fail() -> bool:
        return database.run_sync(
            lambda s: repo.count_failed_attempt(s, token_hash=digest, now=LATER, allowed=3)
        )

    assert [fail(), fail(), fail()] == [True, True, False]
    assert _state(database, digest, LATER) is repo.LinkState.USED


def test_links_are_forgotten_after_they_expired(database: Database) -> None:
    digest = _mint(database)

    kept = database.run_sync(lambda s: repo.prune_connect_links(s, before=NOW))
    dropped = database.run_sync(
        lambda s: repo.prune_connect_links(s, before=NOW + timedelta(days=1))
    )

    assert (kept, dropped) == (0, 1)
    assert _state(database, digest, LATER) is repo.LinkState.UNKNOWN
