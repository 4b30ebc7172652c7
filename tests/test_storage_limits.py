"""Limits held in the database: drafting claims raced from many connections at once (as
replicas would), stale claims, and values longer than their column refused alike on SQLite and
PostgreSQL, whatever statement writes them."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.exc import StatementError
from sqlmodel import Session, select

from storage import repositories as repo
from storage.bounded import ValueTooLong, too_long
from storage.db import Database
from storage.models import ChannelProject, DraftingClaim, Plan

NOW = datetime(2026, 12, 3, 14, 0, tzinfo=UTC)
LONG_AGO = NOW - timedelta(hours=1)


def claim(db: Database, user: str, *, channel: str = "C1", cap: int = 5,
          now: datetime = NOW) -> repo.DraftingOutcome:
    return db.run_sync(
        lambda s: repo.claim_drafting(
            s, team_id="T1", channel_id=channel, user_id=user, thread_ts="1.1", cap=cap, now=now,
            stale_before=now - timedelta(minutes=5),
        )
    )


def all_at_once(count: int, work: Callable[[int], Any]) -> list[Any]:
    """`work(0..count-1)` from `count` threads released together."""
    start = threading.Barrier(count)

    def run(n: int) -> Any:
        start.wait(timeout=30)
        return work(n)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(run, range(count)))


def claims(db: Database) -> list[DraftingClaim]:
    return db.run_sync(lambda s: list(s.exec(select(DraftingClaim)).all()))


def test_one_person_racing_themself_from_many_replicas_gets_one_draft(database: Database) -> None:
    outcomes = all_at_once(8, lambda _n: claim(database, "U1"))

    assert sum(isinstance(o, repo.Claimed) for o in outcomes) == 1
    assert sum(isinstance(o, repo.AlreadyDrafting) for o in outcomes) == 7
    assert len(claims(database)) == 1


def test_many_people_racing_for_a_workspace_get_at_most_its_cap(database: Database) -> None:
    outcomes = all_at_once(10, lambda n: claim(database, f"U{n}", cap=4))

    assert sum(isinstance(o, repo.Claimed) for o in outcomes) == 4
    assert [o.drafting for o in outcomes if isinstance(o, repo.WorkspaceFull)] == [4] * 6
    assert sorted(c.slot for c in claims(database)) == [0, 1, 2, 3]


def test_replicas_racing_over_a_workspace_full_of_stale_claims_share_it_cleanly(
    database: Database,
) -> None:
    for n in range(4):  # four drafts left by a process that died an hour ago
        assert isinstance(claim(database, f"dead{n}", cap=4, now=LONG_AGO), repo.Claimed)

    outcomes = all_at_once(10, lambda n: claim(database, f"U{n}", cap=4))

    assert sum(isinstance(o, repo.Claimed) for o in outcomes) == 4
    assert sum(isinstance(o, repo.WorkspaceFull) for o in outcomes) == 6
    held_by = [c.slack_user_id for c in claims(database)]
    assert len(held_by) == 4 and all(user.startswith("U") for user in held_by)  # dead ones gone


def test_a_released_or_stale_claim_no_longer_counts(database: Database) -> None:
    first = claim(database, "U1", cap=1)
    assert isinstance(first, repo.Claimed)
    assert isinstance(claim(database, "U2", cap=1), repo.WorkspaceFull)

    database.run_sync(lambda s: repo.release_drafting(s, team_id="T1", token=first.token))
    assert isinstance(claim(database, "U2", cap=1, now=LONG_AGO), repo.Claimed)

    # U2's claim is an hour old: a process that died mid-draft; it blocks nobody now.
    assert isinstance(claim(database, "U2", cap=1), repo.Claimed)
    assert isinstance(claim(database, "U3", cap=1, channel="C2"), repo.WorkspaceFull)


def test_the_same_person_may_draft_in_another_channel(database: Database) -> None:
    assert isinstance(claim(database, "U1", channel="C1"), repo.Claimed)
    assert isinstance(claim(database, "U1", channel="C2"), repo.Claimed)
    held = claim(database, "U1", channel="C1")
    assert held == repo.AlreadyDrafting("1.1")


def _plan(**changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "slack_team_id": "T1", "slack_channel_id": "C1", "slack_thread_ts": "1.1",
        "project_id": 1, "project_slug": "acme", "target_sprint": "Sprint 6",
        "minutes_digest": "d" * 64,
    }  # fmt: skip
    return {**fields, **changes}


WRITES: dict[str, Callable[[Session], Any]] = {
    "ORM insert": lambda s: repo.create_plan(s, **_plan(target_sprint="S" * 300)),
    "INSERT ... ON CONFLICT": lambda s: repo.set_channel_project(
        s, team_id="T1", channel_id="C1", project_id=1, project_slug="acme",
        project_name="P" * 300, set_by="U1",
    ),
}


@pytest.mark.parametrize("write", list(WRITES))
def test_a_value_longer_than_its_column_is_refused_alike_on_every_backend(
    database: Database, write: str
) -> None:
    with pytest.raises(StatementError) as raised:
        database.run_sync(WRITES[write])

    refused = too_long(raised.value)
    assert isinstance(refused, ValueTooLong) and refused.length == 300 and refused.limit == 255
    assert refused.sentence.endswith("I can keep at most 255. Shorten it and try again.")
    assert database.run_sync(lambda s: s.exec(select(Plan)).all()) == []
    assert database.run_sync(lambda s: s.exec(select(ChannelProject)).all()) == []


def test_an_update_statement_is_held_to_the_same_limit(database: Database) -> None:
    plan_id = database.run_sync(lambda s: repo.create_plan(s, **_plan()).id)

    with pytest.raises(StatementError) as raised:
        database.run_sync(lambda s: repo.update_plan(s, plan_id=plan_id, target_sprint="S" * 256))

    assert too_long(raised.value) is not None
    stored = database.run_sync(lambda s: repo.get_plan(s, plan_id))
    assert stored is not None and stored.target_sprint == "Sprint 6"
