from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pytest
import sqlalchemy as sa
from sqlmodel import Session

from storage import repositories as repo
from storage.crypto import EncryptionKeyError, TokenCipher, generate_key
from storage.db import Database
from storage.models import Plan, TaigaLink, WriteLedger
from storage.plan_states import MOVES, PLAN_STATES, IllegalTransition, Transition
from storage.repositories import StoredTokens

T = TypeVar("T")

RACERS = 8
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
ACTOR = 6  # a Taiga user id
AUTH = "eyJhbGciOiJIUzI1NiJ9.auth-PLAINTEXT-4f1c2d"
REFRESH = "eyJhbGciOiJIUzI1NiJ9.refresh-PLAINTEXT-9a8b7c"


def _race(db: Database, fn: Callable[[Session, int], T]) -> list[T]:
    """Run `fn(session, n)` in RACERS threads, each in its own transaction, released together.

    On PostgreSQL every racer has its transaction open (and has read from it) before any of
    them acts. SQLite admits one writer at a time (`BEGIN IMMEDIATE`), so there the racers are
    released together just before they begin.
    """
    barrier = threading.Barrier(RACERS)

    def racer(n: int) -> T:
        if db.dialect == "postgresql":
            with db.session() as session:
                session.execute(sa.text("SELECT 1"))
                barrier.wait(timeout=30)
                return fn(session, n)
        barrier.wait(timeout=30)
        with db.session() as session:
            return fn(session, n)

    with ThreadPoolExecutor(max_workers=RACERS) as pool:
        return list(pool.map(racer, range(RACERS)))


def _claim(
    session: Session,
    *,
    plan_id: str,
    action_key: str,
    now: datetime,
    actor: int,
) -> repo.LedgerEntry:
    entries = repo.claim_actions(
        session, plan_id=plan_id, action_keys=[action_key], now=now, actor=actor
    )
    return entries[action_key]


def _plan(db: Database, **overrides: object) -> Plan:
    fields: dict[str, object] = {
        "slack_team_id": "T1",
        "slack_channel_id": "C1",
        "slack_thread_ts": "1712345678.000100",
        "requester_slack_id": "U1",
        "project_id": 7,
        "project_slug": "acme-web",
        "target_sprint": "Sprint 6",
        "minutes_digest": "a" * 64,
    }
    fields.update(overrides)
    return db.run_sync(lambda s: repo.create_plan(s, **fields))


def _link(db: Database, cipher: TokenCipher, *, user_id: str = "U1", **tokens: str | None):
    stored = StoredTokens(
        auth_token=tokens.get("auth_token") or AUTH,
        refresh_token=tokens.get("refresh_token", REFRESH),
    )
    return db.run_sync(
        lambda s: repo.save_link(
            s,
            cipher=cipher,
            team_id="T1",
            user_id=user_id,
            taiga_user_id=42,
            taiga_username="ana",
            tokens=stored,
        )
    )


def _get_link(db: Database, cipher: TokenCipher, user_id: str = "U1") -> repo.TaigaLinkView:
    view = db.run_sync(lambda s: repo.get_link(s, cipher=cipher, team_id="T1", user_id=user_id))
    assert view is not None
    return view


# --- links ------------------------------------------------------------------------------------


def test_saved_link_reads_back_decrypted(database: Database, cipher: TokenCipher) -> None:
    saved = _link(database, cipher)

    view = _get_link(database, cipher)

    assert view == saved
    assert (view.team_id, view.user_id, view.taiga_user_id) == ("T1", "U1", 42)
    assert view.taiga_username == "ana"
    assert view.auth_token == AUTH
    assert view.refresh_token == REFRESH
    assert view.tokens == StoredTokens(auth_token=AUTH, refresh_token=REFRESH)
    assert view.created_at.tzinfo == UTC


def test_link_tokens_are_stored_only_encrypted(database: Database, cipher: TokenCipher) -> None:
    _link(database, cipher)

    with database.engine.connect() as connection:
        row = connection.execute(
            sa.text("SELECT auth_token_enc, refresh_token_enc FROM taiga_link")
        ).one()

    assert AUTH not in row.auth_token_enc
    assert REFRESH not in row.refresh_token_enc
    assert cipher.decrypt(row.auth_token_enc) == AUTH


def test_link_reprs_do_not_show_tokens(database: Database, cipher: TokenCipher) -> None:
    view = _link(database, cipher)
    row = database.run_sync(lambda s: s.get(TaigaLink, view.id))

    for text in (repr(view), str(view), repr(view.tokens), repr(row)):
        assert AUTH not in text
        assert REFRESH not in text
    assert row is not None
    assert row.auth_token_enc not in repr(row)


def test_link_without_refresh_token(database: Database, cipher: TokenCipher) -> None:
    _link(database, cipher, refresh_token=None)

    assert _get_link(database, cipher).refresh_token is None


def test_saving_a_link_again_replaces_it_in_place(database: Database, cipher: TokenCipher) -> None:
    first = _link(database, cipher)

    second = _link(database, cipher, auth_token="new-auth", refresh_token="new-refresh")

    assert second.id == first.id
    assert second.created_at == first.created_at
    view = _get_link(database, cipher)
    assert (view.auth_token, view.refresh_token) == ("new-auth", "new-refresh")


def test_missing_link_is_none(database: Database, cipher: TokenCipher) -> None:
    found = database.run_sync(lambda s: repo.get_link(s, cipher=cipher, team_id="T1", user_id="U9"))

    assert found is None


def test_delete_link_reports_whether_there_was_one(database: Database, cipher: TokenCipher) -> None:
    _link(database, cipher)

    def delete(session: Session) -> bool:
        return repo.delete_link(session, team_id="T1", user_id="U1")

    assert database.run_sync(delete) is True
    assert database.run_sync(delete) is False
    assert (
        database.run_sync(lambda s: repo.get_link(s, cipher=cipher, team_id="T1", user_id="U1"))
        is None
    )


def test_first_time_save_link_races_to_one_row(database: Database, cipher: TokenCipher) -> None:
    def save(session: Session, n: int) -> repo.TaigaLinkView:
        return repo.save_link(
            session,
            cipher=cipher,
            team_id="T1",
            user_id="U1",
            taiga_user_id=42,
            taiga_username="ana",
            tokens=StoredTokens(auth_token=f"auth-{n}"),
        )

    views = _race(database, save)

    assert len({view.id for view in views}) == 1
    assert _get_link(database, cipher).auth_token in {f"auth-{n}" for n in range(RACERS)}


# --- replace_tokens (compare-and-set after a refresh) ------------------------------------------


def _replace(db: Database, cipher: TokenCipher, expected: str, new: str) -> bool:
    return db.run_sync(
        lambda s: repo.replace_tokens(
            s,
            cipher=cipher,
            team_id="T1",
            user_id="U1",
            expected_auth_token=expected,
            tokens=StoredTokens(auth_token=new, refresh_token=f"{new}-refresh"),
        )
    )


def test_replace_tokens_succeeds_while_the_expected_token_is_stored(
    database: Database, cipher: TokenCipher
) -> None:
    _link(database, cipher)

    assert _replace(database, cipher, AUTH, "fresh") is True

    view = _get_link(database, cipher)
    assert (view.auth_token, view.refresh_token) == ("fresh", "fresh-refresh")


def test_replace_tokens_refuses_a_stale_expected_token(
    database: Database, cipher: TokenCipher
) -> None:
    _link(database, cipher)
    _replace(database, cipher, AUTH, "winner")

    assert _replace(database, cipher, AUTH, "loser") is False

    assert _get_link(database, cipher).auth_token == "winner"


def test_replace_tokens_without_a_link_is_false(database: Database, cipher: TokenCipher) -> None:
    assert _replace(database, cipher, AUTH, "fresh") is False


def test_concurrent_refreshes_store_exactly_one_pair(
    database: Database, cipher: TokenCipher
) -> None:
    _link(database, cipher)

    def replace(session: Session, n: int) -> bool:
        return repo.replace_tokens(
            session,
            cipher=cipher,
            team_id="T1",
            user_id="U1",
            expected_auth_token=AUTH,
            tokens=StoredTokens(auth_token=f"auth-{n}", refresh_token=f"refresh-{n}"),
        )

    outcomes = _race(database, replace)

    assert outcomes.count(True) == 1
    winner = outcomes.index(True)
    view = _get_link(database, cipher)
    assert (view.auth_token, view.refresh_token) == (f"auth-{winner}", f"refresh-{winner}")


# --- encryption at rest and key rotation -------------------------------------------------------


def test_sqlite_file_and_wal_hold_no_plaintext_token(
    sqlite_database: Database, cipher: TokenCipher
) -> None:
    view = _link(sqlite_database, cipher)
    row = sqlite_database.run_sync(lambda s: s.get(TaigaLink, view.id))
    assert row is not None
    db_path = Path(str(sqlite_database.url.database))
    wal_path = db_path.with_name(db_path.name + "-wal")

    db_bytes, wal_bytes = db_path.read_bytes(), wal_path.read_bytes()

    assert wal_bytes, "the commit should be in the write-ahead log"
    assert row.auth_token_enc.encode() in db_bytes + wal_bytes  # the bytes we read are the data
    for secret in (AUTH, REFRESH):
        assert secret.encode() not in db_bytes
        assert secret.encode() not in wal_bytes
        assert secret.encode("utf-16-le") not in db_bytes + wal_bytes

    with closing(sqlite3.connect(db_path)) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    checkpointed = db_path.read_bytes()
    assert row.auth_token_enc.encode() in checkpointed
    assert AUTH.encode() not in checkpointed
    assert REFRESH.encode() not in checkpointed


def test_tokens_written_under_an_old_key_read_after_a_new_key_is_put_first(
    database: Database,
) -> None:
    old, new = generate_key(), generate_key()
    _link(database, TokenCipher([old]))

    view = _get_link(database, TokenCipher([new, old]))

    assert (view.auth_token, view.refresh_token) == (AUTH, REFRESH)


def test_rotate_all_tokens_lets_the_old_key_be_removed(database: Database) -> None:
    old, new = generate_key(), generate_key()
    _link(database, TokenCipher([old]), user_id="U1")
    _link(database, TokenCipher([old]), user_id="U2", refresh_token=None)

    rotated = database.run_sync(lambda s: repo.rotate_all_tokens(s, cipher=TokenCipher([new, old])))

    assert rotated == 2
    for user_id in ("U1", "U2"):
        assert _get_link(database, TokenCipher([new]), user_id).auth_token == AUTH
        with pytest.raises(EncryptionKeyError):
            _get_link(database, TokenCipher([old]), user_id)
    assert _get_link(database, TokenCipher([new]), "U2").refresh_token is None


def test_rotate_all_tokens_with_no_links_is_zero(database: Database, cipher: TokenCipher) -> None:
    assert database.run_sync(lambda s: repo.rotate_all_tokens(s, cipher=cipher)) == 0


def test_reading_with_a_wrong_key_is_a_clear_error(database: Database, cipher: TokenCipher) -> None:
    _link(database, cipher)

    with pytest.raises(EncryptionKeyError) as caught:
        _get_link(database, TokenCipher([generate_key()]))

    message = str(caught.value)
    assert "None of the configured TOKEN_ENCRYPTION_KEYS can decrypt stored tokens" in message
    assert "changed or removed" in message
    assert AUTH not in message


def test_rotating_with_only_a_wrong_key_changes_nothing(
    database: Database, cipher: TokenCipher
) -> None:
    _link(database, cipher)

    with pytest.raises(EncryptionKeyError):
        database.run_sync(lambda s: repo.rotate_all_tokens(s, cipher=TokenCipher([generate_key()])))

    assert _get_link(database, cipher).auth_token == AUTH


# --- channel project ---------------------------------------------------------------------------


def test_channel_project_is_set_read_and_replaced(database: Database) -> None:
    def set_project(project_id: int, slug: str) -> None:
        database.run_sync(
            lambda s: repo.set_channel_project(
                s,
                team_id="T1",
                channel_id="C1",
                project_id=project_id,
                project_slug=slug,
                project_name=slug.title(),
                set_by="U1",
            )
        )

    def get() -> object:
        return database.run_sync(
            lambda s: repo.get_channel_project(s, team_id="T1", channel_id="C1")
        )

    assert get() is None
    set_project(7, "acme-web")
    set_project(8, "acme-api")

    found = get()
    assert found is not None
    assert (found.project_id, found.project_slug, found.project_name) == (8, "acme-api", "Acme-Api")
    assert found.set_by == "U1"
    assert found.updated_at.tzinfo == UTC
    other = database.run_sync(lambda s: repo.get_channel_project(s, team_id="T1", channel_id="C2"))
    assert other is None


# --- plans -------------------------------------------------------------------------------------


def test_plan_round_trips_with_json_proposal(database: Database) -> None:
    proposal = {
        "stories": [{"key": "new-story-1", "subject": "Login ✓", "tasks": [{"key": "t1"}]}],
        "milestone": None,
        "warnings": ["café"],
        "usage": {"model_calls": 1},
    }
    expires = NOW + timedelta(hours=24)
    plan = _plan(database, state="proposed", proposal=proposal, expires_at=expires)

    stored = database.run_sync(lambda s: repo.get_plan(s, plan.id))

    assert stored is not None
    assert len(stored.id) == 32
    assert stored.proposal == proposal
    assert stored.result is None
    assert stored.state == "proposed"
    assert stored.version == 1
    assert stored.expires_at == expires
    assert stored.requester_slack_id == "U1"
    assert stored.created_at.tzinfo == UTC


def test_new_plan_starts_drafting(database: Database) -> None:
    assert _plan(database).state == "drafting"


def test_missing_plan_is_none(database: Database) -> None:
    assert database.run_sync(lambda s: repo.get_plan(s, "0" * 32)) is None


def test_create_plan_refuses_unknown_fields_and_states(database: Database) -> None:
    with pytest.raises(TypeError, match="colour"):
        _plan(database, colour="red")
    with pytest.raises(ValueError, match="unknown plan state"):
        _plan(database, state="shipped")


def test_transition_plan_moves_from_an_expected_state_and_bumps_version(
    database: Database,
) -> None:
    plan = _plan(database, state="proposed")

    moved = database.run_sync(
        lambda s: repo.transition_plan(
            s,
            plan_id=plan.id,
            transition=Transition.APPROVE,
            decided_by="U2",
        )
    )

    assert moved is True
    stored = database.run_sync(lambda s: repo.get_plan(s, plan.id))
    assert stored is not None
    assert (stored.state, stored.version, stored.decided_by) == ("approved", 2, "U2")
    assert stored.updated_at > plan.updated_at


def test_transition_plan_from_another_state_changes_nothing(database: Database) -> None:
    plan = _plan(database, state="rejected")

    moved = database.run_sync(
        lambda s: repo.transition_plan(
            s, plan_id=plan.id, transition=Transition.APPROVE, decided_by="U2"
        )
    )

    assert moved is False
    stored = database.run_sync(lambda s: repo.get_plan(s, plan.id))
    assert stored is not None
    assert (stored.state, stored.version, stored.decided_by) == ("rejected", 1, None)


def test_transition_plan_of_a_missing_plan_is_false(database: Database) -> None:
    moved = database.run_sync(
        lambda s: repo.transition_plan(s, plan_id="missing", transition=Transition.APPROVE)
    )

    assert moved is False


def test_transition_plan_refuses_an_illegal_transition_and_guarded_fields(
    database: Database,
) -> None:
    plan = _plan(database, state="proposed")

    with pytest.raises(IllegalTransition, match="ship"):
        database.run_sync(
            lambda s: repo.transition_plan(
                s, plan_id=plan.id, transition="ship"  # type: ignore[arg-type]
            )
        )
    with pytest.raises(TypeError, match="version"):
        database.run_sync(
            lambda s: repo.transition_plan(
                s, plan_id=plan.id, transition=Transition.APPROVE, version=9
            )
        )
    stored = database.run_sync(lambda s: repo.get_plan(s, plan.id))
    assert stored is not None
    assert (stored.state, stored.version) == ("proposed", 1)


def test_the_transition_table_names_every_transition_and_reaches_every_state() -> None:
    assert set(MOVES) == set(Transition)
    sources = set().union(*(move.sources for move in MOVES.values()))
    targets = {move.target for move in MOVES.values()}
    assert sources | targets == PLAN_STATES
    assert targets == PLAN_STATES - {"drafting"}  # every state but the first is reached


def test_transition_is_seen_by_a_plan_already_loaded_in_the_session(database: Database) -> None:
    plan = _plan(database, state="proposed")

    def load_transition_reload(session: Session) -> str:
        loaded = repo.get_plan(session, plan.id)
        assert loaded is not None and loaded.state == "proposed"
        repo.transition_plan(session, plan_id=plan.id, transition=Transition.APPROVE)
        reloaded = repo.get_plan(session, plan.id)
        assert reloaded is not None
        return reloaded.state

    assert database.run_sync(load_transition_reload) == "approved"


def test_plan_loaded_before_a_transition_is_usable_after_the_transaction(
    database: Database,
) -> None:
    plan = _plan(database, state="proposed")

    def load_then_transition(session: Session) -> Plan:
        loaded = repo.get_plan(session, plan.id)
        repo.transition_plan(session, plan_id=plan.id, transition=Transition.APPROVE)
        assert loaded is not None
        return loaded

    returned = database.run_sync(load_then_transition)

    assert (returned.state, returned.version) == ("approved", 2)


def test_absent_json_is_sql_null(database: Database) -> None:
    plan = _plan(database, proposal={"stories": []})
    _plan(database)
    database.run_sync(lambda s: repo.update_plan(s, plan_id=plan.id, proposal=None))

    with database.session() as session:
        nulls = session.execute(
            sa.text("SELECT count(*) FROM plan WHERE proposal IS NULL AND result IS NULL")
        ).scalar_one()

    assert nulls == 2


def test_concurrent_approvals_move_the_plan_exactly_once(database: Database) -> None:
    plan = _plan(database, state="proposed")

    def approve(session: Session, n: int) -> bool:
        return repo.transition_plan(
            session,
            plan_id=plan.id,
            transition=Transition.APPROVE,
            decided_by=f"U{n}",
        )

    outcomes = _race(database, approve)

    assert outcomes.count(True) == 1
    stored = database.run_sync(lambda s: repo.get_plan(s, plan.id))
    assert stored is not None
    assert (stored.state, stored.version) == ("approved", 2)
    assert stored.decided_by == f"U{outcomes.index(True)}"


def test_concurrent_approve_and_reject_agree_on_one_outcome(database: Database) -> None:
    plan = _plan(database, state="proposed")

    def decide(session: Session, n: int) -> bool:
        transition = Transition.APPROVE if n % 2 else Transition.REJECT
        return repo.transition_plan(session, plan_id=plan.id, transition=transition)

    outcomes = _race(database, decide)

    assert outcomes.count(True) == 1
    stored = database.run_sync(lambda s: repo.get_plan(s, plan.id))
    assert stored is not None
    assert stored.state == ("approved" if outcomes.index(True) % 2 else "rejected")


def test_concurrent_plans_with_one_idempotency_key_store_exactly_one(
    database: Database,
) -> None:
    key = "k" * 64

    def create(session: Session, n: int) -> str:
        try:
            repo.create_plan(
                session,
                slack_team_id="",
                slack_channel_id="",
                slack_thread_ts="",
                project_id=7,
                project_slug="acme-web",
                target_sprint="Sprint 6",
                minutes_digest=f"{n}" * 64,
                idempotency_key=key,
            )
        except repo.IdempotencyKeyTaken:
            return "taken"
        return "stored"

    outcomes = _race(database, create)

    assert outcomes.count("stored") == 1
    stored = database.run_sync(lambda s: repo.plan_for_idempotency_key(s, key=key))
    assert stored is not None
    assert stored.minutes_digest == f"{outcomes.index('stored')}" * 64
    assert _plan(database).id != _plan(database).id  # plans without a key never clash


def test_update_plan_changes_fields_and_bumps_version(database: Database) -> None:
    plan = _plan(database, state="executing")

    updated = database.run_sync(
        lambda s: repo.update_plan(
            s,
            plan_id=plan.id,
            slack_message_ts="1712345678.000200",
            result={"created": [{"key": "milestone", "id": 3}]},
            error=None,
        )
    )

    assert updated is True
    stored = database.run_sync(lambda s: repo.get_plan(s, plan.id))
    assert stored is not None
    assert stored.slack_message_ts == "1712345678.000200"
    assert stored.result == {"created": [{"key": "milestone", "id": 3}]}
    assert (stored.state, stored.version) == ("executing", 2)


def test_update_plan_cannot_move_state(database: Database) -> None:
    plan = _plan(database)

    with pytest.raises(TypeError, match="state"):
        database.run_sync(lambda s: repo.update_plan(s, plan_id=plan.id, state="done"))


def test_update_of_a_missing_plan_is_false(database: Database) -> None:
    assert database.run_sync(lambda s: repo.update_plan(s, plan_id="missing", error="x")) is False



def test_transition_plan_with_an_expected_version_refuses_a_plan_touched_since(
    database: Database,
) -> None:
    plan = _plan(database, state="executing", lease_owner="run-1", lease_until=NOW)
    database.run_sync(lambda s: repo.update_plan(s, plan_id=plan.id, error=None))  # version 2

    def park(version: int) -> bool:
        return database.run_sync(
            lambda s: repo.transition_plan(
                s, plan_id=plan.id, transition=Transition.FINISH_APPLY_PARTIAL,
                expected_version=version, holder="run-1",
            )
        )

    assert park(1) is False
    assert park(2) is True


def test_plans_to_sweep_picks_due_slack_plans_oldest_first_and_bounded(
    database: Database,
) -> None:
    old, recent = NOW - timedelta(hours=1), NOW - timedelta(seconds=30)
    interrupted = "Interrupted: CancelledError"

    def plan(state: str, updated_at: datetime, **fields: object) -> str:
        fields.setdefault("slack_message_ts", "1712345678.000200")
        return _plan(database, state=state, updated_at=updated_at, **fields).id

    stale_executing = plan("executing", old - timedelta(minutes=1), lease_until=old)
    approved = plan("approved", old)
    cancelled = plan("partial", old + timedelta(minutes=1), error=interrupted)
    expired = plan("proposed", recent, expires_at=NOW - timedelta(seconds=1))
    for state, updated_at, fields in [
        ("approved", recent, {}),  # within the grace period
        ("executing", old, {"lease_until": NOW + timedelta(seconds=5)}),  # its run is alive
        ("partial", old, {"error": "2 item(s) not created."}),  # waits for a human Retry
        ("proposed", old, {"expires_at": NOW + timedelta(hours=1)}),
        ("approved", old, {"slack_message_ts": None}),  # HTTP API / CLI plan
        ("done", old, {}),
    ]:
        plan(state, updated_at, **fields)

    def sweep(limit: int) -> list[str]:
        return database.run_sync(
            lambda s: [
                p.id for p in repo.plans_to_sweep(
                    s, approved_before=NOW - timedelta(minutes=2),
                    lapsed_by=NOW, expired_by=NOW,
                    interrupted_error=interrupted, limit=limit,
                )
            ]
        )

    assert sweep(20) == [stale_executing, approved, cancelled, expired]
    assert sweep(2) == [stale_executing, approved]

# --- write ledger ------------------------------------------------------------------------------


def test_claim_then_complete_an_action(database: Database) -> None:
    plan = _plan(database, state="executing")

    claimed = database.run_sync(
        lambda s: _claim(
            s, plan_id=plan.id, action_key="milestone", now=NOW, actor=ACTOR
        )
    )
    again = database.run_sync(
        lambda s: _claim(
            s, plan_id=plan.id, action_key="milestone", now=NOW + timedelta(minutes=5), actor=7
        )
    )
    done = database.run_sync(
        lambda s: repo.complete_action(
            s,
            plan_id=plan.id,
            action_key="milestone",
            taiga_id=31,
            taiga_ref=None,
            now=NOW + timedelta(seconds=1),
        )
    )

    assert (claimed.state, claimed.claimed_now, claimed.done) == ("pending", True, False)
    assert claimed.attempted_at == NOW
    assert claimed.actor_taiga_id == ACTOR
    assert (again.state, again.claimed_now, again.attempted_at) == ("pending", False, NOW)
    assert again.actor_taiga_id == ACTOR  # the second caller's claim changed nothing
    assert (done.state, done.done, done.taiga_id, done.taiga_ref) == ("done", True, 31, None)
    assert done.done_at == NOW + timedelta(seconds=1)
    after = database.run_sync(
        lambda s: _claim(
            s, plan_id=plan.id, action_key="milestone", now=NOW, actor=ACTOR
        )
    )
    assert (after.state, after.claimed_now, after.taiga_id) == ("done", False, 31)


def test_ledger_for_plan_lists_actions_in_claim_order(database: Database) -> None:
    plan = _plan(database, state="executing")
    other = _plan(database, state="executing")
    keys = ["milestone", "story:new-story-1", "task:new-story-1/task-1"]

    def claim_all(session: Session) -> None:
        for key in keys:
            _claim(session, plan_id=plan.id, action_key=key, now=NOW, actor=ACTOR)
        _claim(session, plan_id=other.id, action_key="milestone", now=NOW, actor=ACTOR)
        repo.complete_action(
            session,
            plan_id=plan.id,
            action_key="story:new-story-1",
            taiga_id=100,
            taiga_ref=12,
            now=NOW,
        )

    database.run_sync(claim_all)
    ledger = database.run_sync(lambda s: repo.ledger_for_plan(s, plan.id))

    assert list(ledger) == keys
    assert ledger["story:new-story-1"].done
    assert (ledger["story:new-story-1"].taiga_id, ledger["story:new-story-1"].taiga_ref) == (
        100,
        12,
    )
    assert not ledger["milestone"].done
    assert database.run_sync(lambda s: repo.ledger_for_plan(s, "missing")) == {}


def test_retaking_restamps_only_pending_actions_with_the_new_sender(database: Database) -> None:
    plan = _plan(database, state="partial")
    later = NOW + timedelta(hours=1)

    def claim_then_retake(session: Session) -> list[repo.LedgerEntry]:
        for key in ("story:new-story-1", "story:new-story-2"):
            _claim(session, plan_id=plan.id, action_key=key, now=NOW, actor=ACTOR)
        repo.complete_action(
            session, plan_id=plan.id, action_key="story:new-story-2", taiga_id=9, taiga_ref=9,
            now=NOW,
        )  # fmt: skip
        return repo.retake_actions(
            session,
            plan_id=plan.id,
            action_keys=["story:new-story-1", "story:new-story-2", "story:unknown"],
            now=later,
            actor=7,
        )

    retaken = database.run_sync(claim_then_retake)

    assert [(e.action_key, e.state, e.attempted_at, e.actor_taiga_id) for e in retaken] == [
        ("story:new-story-1", "pending", later, 7)
    ]
    ledger = database.run_sync(lambda s: repo.ledger_for_plan(s, plan.id))
    assert ledger["story:new-story-1"].actor_taiga_id == 7
    assert (ledger["story:new-story-2"].actor_taiga_id, ledger["story:new-story-2"].done) == (
        ACTOR,
        True,
    )


def test_each_attempt_records_the_external_reference_it_sends(database: Database) -> None:
    """Claiming stores a write's reference (none for keys without one, e.g. the sprint);
    a retake stamps the new attempt's, replacing a row claimed without one."""
    plan = _plan(database, state="partial")
    story = ["taiga-planner", f"{plan.id}:story:new-story-1"]

    def claim_then_retake(session: Session) -> list[repo.LedgerEntry]:
        repo.claim_actions(
            session, plan_id=plan.id, action_keys=["milestone", "story:new-story-1"], now=NOW,
            actor=ACTOR, references={"story:new-story-1": story},
        )  # fmt: skip
        _claim(session, plan_id=plan.id, action_key="task:legacy", now=NOW, actor=ACTOR)
        return repo.retake_actions(
            session, plan_id=plan.id, action_keys=["task:legacy"], now=NOW, actor=ACTOR,
            references={"task:legacy": ["taiga-planner", f"{plan.id}:task:legacy"]},
        )  # fmt: skip

    [retaken] = database.run_sync(claim_then_retake)

    ledger = database.run_sync(lambda s: repo.ledger_for_plan(s, plan.id))
    assert ledger["milestone"].external_reference is None
    assert ledger["story:new-story-1"].external_reference == tuple(story)
    expected = ("taiga-planner", f"{plan.id}:task:legacy")
    assert retaken.external_reference == ledger["task:legacy"].external_reference == expected


def test_completing_an_unclaimed_action_is_an_error(database: Database) -> None:
    plan = _plan(database, state="executing")

    with pytest.raises(LookupError, match="never claimed"):
        database.run_sync(
            lambda s: repo.complete_action(
                s, plan_id=plan.id, action_key="milestone", taiga_id=1, taiga_ref=1, now=NOW
            )
        )


def test_concurrent_claims_of_one_action_make_one_row_and_one_claimant(
    database: Database,
) -> None:
    plan = _plan(database, state="executing")

    def claim(session: Session, n: int) -> repo.LedgerEntry:
        return _claim(
            session, plan_id=plan.id, action_key="story:new-story-1", now=NOW, actor=n
        )

    entries = _race(database, claim)

    assert [entry.claimed_now for entry in entries].count(True) == 1
    assert {(entry.state, entry.attempted_at) for entry in entries} == {("pending", NOW)}
    with database.session() as session:
        count = session.execute(sa.select(sa.func.count()).select_from(WriteLedger)).scalar_one()
    assert count == 1


def test_claiming_a_phase_in_one_call_inserts_only_the_actions_not_yet_recorded(
    database: Database,
) -> None:
    plan = _plan(database, state="executing")
    keys = ["story:new-story-1", "story:new-story-2", "story:new-story-3", "story:new-story-4"]

    def earlier_run(session: Session) -> None:
        repo.claim_actions(session, plan_id=plan.id, action_keys=keys[:2], now=NOW, actor=7)
        repo.complete_action(
            session, plan_id=plan.id, action_key=keys[0], taiga_id=40, taiga_ref=12, now=NOW
        )

    database.run_sync(earlier_run)
    later = NOW + timedelta(minutes=1)

    entries = database.run_sync(
        lambda s: repo.claim_actions(s, plan_id=plan.id, action_keys=keys, now=later, actor=ACTOR)
    )

    assert list(entries) == keys
    summary = [(e.state, e.claimed_now, e.actor_taiga_id, e.attempted_at) for e in entries.values()]
    assert summary == [
        ("done", False, 7, NOW),
        ("pending", False, 7, NOW),
        ("pending", True, ACTOR, later),
        ("pending", True, ACTOR, later),
    ]
    assert list(database.run_sync(lambda s: repo.ledger_for_plan(s, plan.id))) == keys
    assert database.run_sync(
        lambda s: repo.claim_actions(s, plan_id=plan.id, action_keys=[], now=NOW, actor=ACTOR)
    ) == {}


def test_concurrent_phase_claims_give_each_action_one_row_and_one_claimant(
    database: Database,
) -> None:
    plan = _plan(database, state="executing")
    keys = [f"task:new-story-1/task-{n}" for n in range(1, 6)]

    def claim(session: Session, n: int) -> dict[str, repo.LedgerEntry]:
        return repo.claim_actions(session, plan_id=plan.id, action_keys=keys, now=NOW, actor=n)

    results = _race(database, claim)

    for key in keys:
        assert [result[key].claimed_now for result in results].count(True) == 1
    ledger = database.run_sync(lambda s: repo.ledger_for_plan(s, plan.id))
    assert list(ledger) == keys and {e.state for e in ledger.values()} == {"pending"}


# --- slack events ------------------------------------------------------------------------------


def test_first_delivery_is_true_only_once(database: Database) -> None:
    def deliver(event_id: str) -> bool:
        return database.run_sync(lambda s: repo.first_delivery(s, event_id=event_id, now=NOW))

    assert deliver("Ev1") is True
    assert deliver("Ev1") is False
    assert deliver("Ev2") is True


def test_concurrent_deliveries_of_one_event_are_first_exactly_once(database: Database) -> None:
    outcomes = _race(database, lambda s, n: repo.first_delivery(s, event_id="EvRACE", now=NOW))

    assert outcomes.count(True) == 1


def test_a_refused_duplicate_does_not_undo_the_rest_of_the_transaction(
    database: Database,
) -> None:
    database.run_sync(lambda s: repo.first_delivery(s, event_id="Ev1", now=NOW))

    def both(session: Session) -> tuple[bool, bool]:
        fresh = repo.first_delivery(session, event_id="Ev2", now=NOW)
        duplicate = repo.first_delivery(session, event_id="Ev1", now=NOW)
        return fresh, duplicate

    assert database.run_sync(both) == (True, False)
    assert database.run_sync(lambda s: repo.first_delivery(s, event_id="Ev2", now=NOW)) is False


def test_prune_forgets_old_event_ids(database: Database) -> None:
    database.run_sync(lambda s: repo.first_delivery(s, event_id="old", now=NOW))
    database.run_sync(
        lambda s: repo.first_delivery(s, event_id="new", now=NOW + timedelta(hours=2))
    )

    pruned = database.run_sync(
        lambda s: repo.prune_slack_events(s, before=NOW + timedelta(hours=1))
    )

    assert pruned == 1
    assert database.run_sync(lambda s: repo.first_delivery(s, event_id="old", now=NOW)) is True
    assert database.run_sync(lambda s: repo.first_delivery(s, event_id="new", now=NOW)) is False
