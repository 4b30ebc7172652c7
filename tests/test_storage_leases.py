"""The lease on `executing` / `undoing` plans, as storage enforces it (SQLite and PostgreSQL):
only the holder finishes, a takeover or a park needs the lease to have lapsed, a renewal by a
run that lost the plan fails, and leaving a leased state clears the lease."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from storage import repositories as repo
from storage.db import Database
from storage.models import Plan
from storage.plan_states import Transition

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=30)


def executing(db: Database, *, holder: str = "run-a", until: datetime = NOW + LEASE) -> Plan:
    def create(session: object) -> Plan:
        plan = repo.create_plan(
            session,  # type: ignore[arg-type]
            slack_team_id="T1", slack_channel_id="C1", slack_thread_ts="1.1",
            slack_message_ts="1.2", project_id=1, project_slug="p", target_sprint="Sprint 6",
            minutes_digest="a" * 64, state="approved",
        )
        moved = repo.transition_plan(
            session, plan_id=plan.id, transition=Transition.START_APPLY,  # type: ignore[arg-type]
            holder=holder, lease_until=until, now=NOW,
        )
        assert moved
        return plan

    return db.run_sync(create)


def move(db: Database, plan_id: str, transition: Transition, **terms: object) -> bool:
    return db.run_sync(
        lambda s: repo.transition_plan(s, plan_id=plan_id, transition=transition, **terms)
    )


def stored(db: Database, plan_id: str) -> Plan:
    plan = db.run_sync(lambda s: repo.get_plan(s, plan_id))
    assert plan is not None
    return plan


def test_starting_an_apply_records_the_holder_and_the_end_of_its_lease(database: Database) -> None:
    plan = stored(database, executing(database).id)

    assert (plan.state, plan.lease_owner, plan.lease_until) == ("executing", "run-a", NOW + LEASE)


def test_only_the_holder_finishes_and_finishing_clears_the_lease(database: Database) -> None:
    plan = executing(database)

    by_other = move(database, plan.id, Transition.FINISH_APPLY, holder="run-b", now=NOW)
    by_holder = move(database, plan.id, Transition.FINISH_APPLY, holder="run-a", now=NOW)

    assert (by_other, by_holder) == (False, True)
    done = stored(database, plan.id)
    assert (done.state, done.lease_owner, done.lease_until) == ("done", None, None)


def test_a_finish_without_the_holder_is_a_programming_error(database: Database) -> None:
    plan = executing(database)

    with pytest.raises(repo.LeaseHolderMissing):
        move(database, plan.id, Transition.FINISH_APPLY_PARTIAL, now=NOW)


@pytest.mark.parametrize("transition", [Transition.TAKE_OVER_APPLY, Transition.PARK])
def test_a_live_lease_is_never_taken_over_or_parked_however_old_the_plan(
    database: Database, transition: Transition
) -> None:
    plan = executing(database)
    later = NOW + LEASE - timedelta(seconds=1)  # renewed just in time, long after it started

    live = move(database, plan.id, transition, holder="run-b", lease_until=later + LEASE,
                now=later)  # fmt: skip
    lapsed = move(database, plan.id, transition, holder="run-b", lease_until=NOW + 3 * LEASE,
                  now=NOW + LEASE)  # fmt: skip

    assert (live, lapsed) == (False, True)


def test_after_a_takeover_the_old_run_can_neither_renew_nor_overwrite_the_result(
    database: Database,
) -> None:
    plan = executing(database)
    took = move(database, plan.id, Transition.TAKE_OVER_APPLY, holder="run-b",
                lease_until=NOW + 3 * LEASE, now=NOW + 2 * LEASE)  # fmt: skip

    renewed = database.run_sync(
        lambda s: repo.renew_lease(s, plan_id=plan.id, holder="run-a", until=NOW + 4 * LEASE)
    )
    old_finish = move(database, plan.id, Transition.FINISH_APPLY, holder="run-a",
                      now=NOW + 2 * LEASE, result={"by": "run-a"})  # fmt: skip
    new_finish = move(database, plan.id, Transition.FINISH_APPLY_PARTIAL, holder="run-b",
                      now=NOW + 2 * LEASE, result={"by": "run-b"})  # fmt: skip

    assert (took, renewed, old_finish, new_finish) == (True, False, False, True)
    assert stored(database, plan.id).result == {"by": "run-b"}


def test_the_holder_renews_its_lease_and_the_sweep_learns_when_it_ends(database: Database) -> None:
    plan = executing(database)

    renewed = database.run_sync(
        lambda s: repo.renew_lease(s, plan_id=plan.id, holder="run-a", until=NOW + 2 * LEASE)
    )
    due = database.run_sync(
        lambda s: repo.next_sweep_due(s, approved_grace=LEASE, drafting_limit=LEASE)
    )
    swept = database.run_sync(
        lambda s: repo.plans_to_sweep(
            s, approved_before=NOW, lapsed_by=NOW + LEASE, expired_by=NOW
        )
    )

    assert renewed and due == NOW + 2 * LEASE
    assert swept == []  # renewed: its run is alive
