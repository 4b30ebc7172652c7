"""Plan versions in storage: version 1 when drafted, one more per edit or refinement, each with
its history row; two people changing the same version at once cannot both win."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
from sqlmodel import Session

from agent.proposal import Proposal
from storage import repositories as repo
from storage.db import Database
from storage.models import Plan
from storage.plan_states import Transition

PROPOSAL_V1 = {"project": {"id": 7, "slug": "acme", "name": "Acme"}, "target_sprint": "Sprint 6",
               "milestone": None, "stories": [{"key": "new-story-1", "subject": "Login"}]}
PROPOSAL_V2 = {**PROPOSAL_V1, "stories": [{"key": "new-story-1", "subject": "Sign in"}]}


def _drafting_plan(db: Database) -> Plan:
    return db.run_sync(
        lambda s: repo.create_plan(
            s, slack_team_id="T1", slack_channel_id="C1", slack_thread_ts="1.1",
            requester_slack_id="U_ALICE", project_id=7, project_slug="acme",
            target_sprint="Sprint 6", minutes_digest="a" * 64,
        )
    )


def _proposed_plan(db: Database) -> Plan:
    plan = _drafting_plan(db)
    assert db.run_sync(
        lambda s: repo.store_first_version(
            s, plan_id=plan.id, proposal=PROPOSAL_V1, author_slack_id="U_ALICE"
        )
    )
    stored = db.run_sync(lambda s: repo.get_plan(s, plan.id))
    assert stored is not None
    return stored


def test_a_drafted_proposal_is_version_1_with_its_history(database: Database) -> None:
    plan = _proposed_plan(database)

    revisions = database.run_sync(lambda s: repo.revisions_of(s, plan.id))

    assert (plan.state, plan.proposal_version) == ("proposed", 1)
    assert [(r.number, r.kind, r.author_slack_id) for r in revisions] == [
        (1, "drafted", "U_ALICE")
    ]


def test_an_edit_of_the_current_version_makes_the_next_one(database: Database) -> None:
    plan = _proposed_plan(database)

    moved = database.run_sync(
        lambda s: repo.store_new_version(
            s, plan_id=plan.id, seen_version=1, proposal=PROPOSAL_V2, kind="edited",
            author_slack_id="U_BOB",
        )
    )

    stored = database.run_sync(lambda s: repo.get_plan(s, plan.id))
    revisions = database.run_sync(lambda s: repo.revisions_of(s, plan.id))
    assert moved and stored is not None
    assert (stored.state, stored.proposal_version, stored.proposal) == ("proposed", 2, PROPOSAL_V2)
    assert [(r.number, r.kind, r.author_slack_id) for r in revisions] == [
        (1, "drafted", "U_ALICE"), (2, "edited", "U_BOB")
    ]


def test_two_edits_of_the_same_version_at_once_make_exactly_one_new_version(
    database: Database,
) -> None:
    plan = _proposed_plan(database)
    barrier = threading.Barrier(2)

    def edit(author: str) -> bool:
        barrier.wait(timeout=30)
        with database.session() as session:
            return repo.store_new_version(
                session, plan_id=plan.id, seen_version=1, proposal=PROPOSAL_V2, kind="edited",
                author_slack_id=author,
            )

    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = list(pool.map(edit, ["U_BOB", "U_CAROL"]))

    revisions = database.run_sync(lambda s: repo.revisions_of(s, plan.id))
    assert sorted(outcomes) == [False, True]
    assert [r.number for r in revisions] == [1, 2]


def test_approving_a_replaced_version_changes_nothing(database: Database) -> None:
    plan = _proposed_plan(database)
    database.run_sync(
        lambda s: repo.store_new_version(
            s, plan_id=plan.id, seen_version=1, proposal=PROPOSAL_V2, kind="refined",
            author_slack_id="U_BOB", note="rename the login story",
        )
    )

    def approve_version_1(s: Session) -> bool:
        return repo.transition_plan(
            s, plan_id=plan.id, transition=Transition.APPROVE, expected_proposal_version=1
        )

    assert database.run_sync(approve_version_1) is False
    stored = database.run_sync(lambda s: repo.get_plan(s, plan.id))
    assert stored is not None and stored.state == "proposed"


def test_a_plan_no_longer_proposed_takes_no_new_version(database: Database) -> None:
    plan = _proposed_plan(database)
    database.run_sync(
        lambda s: repo.transition_plan(s, plan_id=plan.id, transition=Transition.REJECT)
    )

    moved = database.run_sync(
        lambda s: repo.store_new_version(
            s, plan_id=plan.id, seen_version=1, proposal=PROPOSAL_V2, kind="edited",
            author_slack_id="U_BOB",
        )
    )

    assert moved is False
    assert [r.number for r in database.run_sync(lambda s: repo.revisions_of(s, plan.id))] == [1]


def _two_story_plan() -> Proposal:
    return Proposal.model_validate(
        {
            "project": {"id": 7, "slug": "acme", "name": "Acme"},
            "target_sprint": "Sprint 7",
            "milestone": {"name": "Sprint 7", "to_create": True},
            "stories": [
                {"key": "new-story-1", "subject": "Login",
                 "tasks": [{"key": "new-story-1/task-1", "subject": "API"},
                           {"key": "new-story-1/task-2", "subject": "UI"}]},
                {"key": "new-story-2", "subject": "Export",
                 "tasks": [{"key": "new-story-2/task-1", "subject": "CSV"}]},
            ],
            "tasks_for_existing": [
                {"key": "existing-9/task-1", "subject": "Fix", "user_story_id": 9}
            ],
        }
    )


def test_what_is_left_out_is_not_written_and_a_story_takes_its_tasks_along() -> None:
    proposal = _two_story_plan().picking({"new-story-2", "new-story-1/task-2"}, picked=False)

    keys = [a.key for a in proposal.actions()]

    assert keys == ["milestone", "story:new-story-1", "task:new-story-1/task-1",
                    "task:existing-9/task-1"]


def test_putting_an_item_back_writes_it_again_and_unknown_keys_are_ignored() -> None:
    proposal = _two_story_plan().picking({"new-story-2", "no-such-key"}, picked=False)

    back = proposal.picking({"new-story-2"}, picked=True)

    assert proposal.left_out == ["new-story-2"]
    assert back.left_out == [] and len(back.actions()) == len(_two_story_plan().actions())


@pytest.mark.parametrize("left_out", [{"new-story-1", "new-story-2", "existing-9/task-1"}])
def test_leaving_everything_out_writes_nothing_not_even_the_new_sprint(left_out: set[str]) -> None:
    proposal = _two_story_plan().picking(left_out, picked=False)

    assert proposal.actions() == [] and proposal.is_empty


def test_version_1_keeps_the_minutes_it_was_drafted_from(database: Database) -> None:
    plan = _drafting_plan(database)
    database.run_sync(
        lambda s: repo.store_first_version(
            s, plan_id=plan.id, proposal=PROPOSAL_V1, author_slack_id="U_ALICE",
            minutes="Ship the login page.",
        )
    )
    older = _proposed_plan(database)  # stored without its minutes

    assert database.run_sync(lambda s: repo.drafted_from(s, plan.id)) == "Ship the login page."
    assert database.run_sync(lambda s: repo.drafted_from(s, older.id)) is None


def test_the_latest_plan_of_a_thread_is_the_newest_one_started_there(database: Database) -> None:
    def started(thread_ts: str, minute: int) -> Plan:
        return database.run_sync(
            lambda s: repo.create_plan(
                s, slack_team_id="T1", slack_channel_id="C1", slack_thread_ts=thread_ts,
                project_id=7, project_slug="acme", target_sprint="Sprint 6",
                minutes_digest="a" * 64, created_at=datetime(2024, 6, 3, 9, minute, tzinfo=UTC),
            )
        )

    started("1.1", 0)
    second = started("1.1", 5)
    elsewhere = started("2.2", 10)

    def latest(thread_ts: str) -> str | None:
        plan = database.run_sync(
            lambda s: repo.latest_plan_in_thread(
                s, team_id="T1", channel_id="C1", thread_ts=thread_ts
            )
        )
        return plan.id if plan else None

    assert latest("1.1") == second.id
    assert latest("2.2") == elsewhere.id
    assert latest("3.3") is None
