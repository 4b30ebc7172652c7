"""Undo of an applied plan against the fake Taiga: only what the plan created and nobody changed
since is deleted, only with the delete permissions, exactly once (double click, restart)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from agent.executor import apply_plan
from agent.undo import UndoRefused, UndoReport, undo_plan
from agent.undo.report import KEPT_CHANGED, KEPT_HAS_TASKS, KEPT_SPRINT_NOT_EMPTY
from storage import repositories as repo
from storage.db import Database
from storage.models import utcnow
from storage.plan_states import Transition
from taiga.client import TaigaClient, TaigaSession
from taiga.errors import Forbidden, NotFound
from tests.peers.fake_taiga import PROJECT_ID, VIEW_PERMISSIONS, FakeTaiga
from tests.peers.taiga_sessions import session_as
from tests.test_executor import plan_state, proposal, store_plan

WEB = "https://taiga.example"
WINDOW = timedelta(minutes=30)


async def applied(db: Database, taiga: TaigaSession, *, sprint: str = "Sprint 7") -> str:
    """A plan of a new sprint with 2 stories of 2 tasks each, applied with `taiga`."""
    plan_id = await store_plan(db, proposal(new_sprint=sprint))
    result = await apply_plan(db=db, plan_id=plan_id, taiga=taiga, web_url=WEB)
    assert result.complete
    return plan_id


async def undo(db: Database, plan_id: str, taiga: TaigaSession, **kwargs: Any) -> UndoReport:
    return await undo_plan(db=db, plan_id=plan_id, taiga=taiga, window=WINDOW, **kwargs)


def deletes(fake: FakeTaiga) -> list[str]:
    return [r.path for r in fake.requests if r.method == "DELETE"]


def named(fake: FakeTaiga, subject: str) -> dict[str, Any]:
    items = [*fake.stories(PROJECT_ID), *fake.tasks(PROJECT_ID), *fake.milestones(PROJECT_ID)]
    return next(i for i in items if i.get("subject", i.get("name")) == subject)


def exists(fake: FakeTaiga, subject: str) -> bool:
    items = [*fake.stories(PROJECT_ID), *fake.tasks(PROJECT_ID), *fake.milestones(PROJECT_ID)]
    return any(i.get("subject", i.get("name")) == subject for i in items)


PLAN_ITEMS = [
    "Sprint 7", "Story 1", "Story 2",
    "Story 1 task 1", "Story 1 task 2", "Story 2 task 1", "Story 2 task 2",
]  # fmt: skip


@pytest.mark.anyio
async def test_the_apply_records_each_objects_version(
    sqlite_database: Database, alice: TaigaSession
) -> None:
    plan_id = await applied(sqlite_database, alice)

    ledger = await sqlite_database.run(lambda s: repo.ledger_for_plan(s, plan_id))

    assert ledger["story:new-story-1"].taiga_version == 1
    assert ledger["task:new-story-2/task-2"].taiga_version == 1


@pytest.mark.anyio
async def test_undo_deletes_tasks_then_stories_then_the_sprint(
    sqlite_database: Database, fake_taiga: FakeTaiga, alice: TaigaSession
) -> None:
    plan_id = await applied(sqlite_database, alice)
    fake_taiga.clear_requests()

    report = await undo(sqlite_database, plan_id, alice)

    assert report.state == "undone" and report.kept == [] and report.failed == []
    assert sorted(item.subject for item in report.removed) == sorted(PLAN_ITEMS)
    assert not any(exists(fake_taiga, subject) for subject in PLAN_ITEMS)
    paths = deletes(fake_taiga)
    kinds = [p.split("/")[1] for p in paths]
    assert kinds == ["tasks"] * 4 + ["userstories"] * 2 + ["milestones"]
    assert await plan_state(sqlite_database, plan_id) == "undone"
    # Asking again shows the same report and deletes nothing.
    fake_taiga.clear_requests()
    assert await undo(sqlite_database, plan_id, alice) == report
    assert deletes(fake_taiga) == []


@pytest.mark.anyio
async def test_undo_keeps_what_someone_changed_since_and_what_holds_it(
    sqlite_database: Database, fake_taiga: FakeTaiga, alice: TaigaSession
) -> None:
    plan_id = await applied(sqlite_database, alice)
    fake_taiga.edit("story", named(fake_taiga, "Story 2")["id"], description="Edited by Dana")
    fake_taiga.edit("task", named(fake_taiga, "Story 1 task 1")["id"], subject="Story 1 task 1")
    someone_elses = fake_taiga.add_task(PROJECT_ID, "Dana's own task")
    fake_taiga.clear_requests()

    report = await undo(sqlite_database, plan_id, alice)

    kept = {item.subject: item.reason for item in report.kept}
    assert kept == {
        "Story 1 task 1": KEPT_CHANGED,
        "Story 1": KEPT_HAS_TASKS,  # deleting it would delete the kept task
        "Story 2": KEPT_CHANGED,
        "Sprint 7": KEPT_SPRINT_NOT_EMPTY,
    }
    removed = sorted(item.subject for item in report.removed)
    assert removed == ["Story 1 task 2", "Story 2 task 1", "Story 2 task 2"]
    for subject in ("Story 1 task 1", "Story 1", "Story 2", "Sprint 7", "Dana's own task"):
        assert exists(fake_taiga, subject), subject
    assert not exists(fake_taiga, "Story 2 task 1")
    assert all(str(someone_elses["id"]) not in p for p in deletes(fake_taiga) if "tasks" in p)
    assert report.state == "undone"


@pytest.mark.anyio
async def test_undo_is_refused_without_the_delete_permissions(
    sqlite_database: Database, fake_taiga: FakeTaiga, taiga_client: TaigaClient
) -> None:
    fake_taiga.add_user("carol", "carol123", full_name="Carol Writer")
    role = (*VIEW_PERMISSIONS, "add_us", "add_task", "add_milestone", "delete_task")
    fake_taiga.add_member(PROJECT_ID, "carol", fake_taiga.add_role(PROJECT_ID, "Writer", role))
    carol = session_as(fake_taiga, taiga_client, "carol")
    plan_id = await applied(sqlite_database, carol)
    fake_taiga.clear_requests()

    with pytest.raises(UndoRefused, match="lacks delete_milestone, delete_us"):
        await undo(sqlite_database, plan_id, carol)

    assert deletes(fake_taiga) == []
    assert all(exists(fake_taiga, subject) for subject in PLAN_ITEMS)
    assert await plan_state(sqlite_database, plan_id) == "done"


@pytest.mark.anyio
async def test_undo_is_refused_after_the_window(
    sqlite_database: Database, fake_taiga: FakeTaiga, alice: TaigaSession
) -> None:
    plan_id = await applied(sqlite_database, alice)

    with pytest.raises(UndoRefused, match="only possible for 30 minutes"):
        await undo(sqlite_database, plan_id, alice, now=lambda: utcnow() + WINDOW * 1.1)

    assert deletes(fake_taiga) == []


@pytest.mark.anyio
async def test_a_double_click_undoes_once(
    sqlite_database: Database, fake_taiga: FakeTaiga, alice: TaigaSession
) -> None:
    plan_id = await applied(sqlite_database, alice)
    fake_taiga.clear_requests()

    first, second = await asyncio.gather(
        undo(sqlite_database, plan_id, alice), undo(sqlite_database, plan_id, alice)
    )

    assert sorted([first.state, second.state]) in (["undoing", "undone"], ["undone", "undone"])
    paths = deletes(fake_taiga)
    assert len(paths) == len(set(paths)) == len(PLAN_ITEMS)
    ledger = await sqlite_database.run(lambda s: repo.ledger_for_plan(s, plan_id))
    assert sum(key.startswith("undo:") for key in ledger) == len(PLAN_ITEMS)


@pytest.mark.anyio
async def test_an_undo_cut_short_by_a_restart_is_finished_once(
    sqlite_database: Database, fake_taiga: FakeTaiga, alice: TaigaSession
) -> None:
    """The restart hit after a DELETE went through but before the ledger said so: the retried
    DELETE would get Taiga's 403, so the read (404) tells that it is gone."""
    plan_id = await applied(sqlite_database, alice)
    task = named(fake_taiga, "Story 1 task 1")
    started = utcnow()
    await sqlite_database.run(
        lambda s: repo.transition_plan(
            s, plan_id=plan_id, transition=Transition.START_UNDO, holder="died",
            lease_until=started + timedelta(seconds=30),
        )
    )
    await sqlite_database.run(
        lambda s: repo.claim_actions(
            s, plan_id=plan_id, action_keys=["undo:task:new-story-1/task-1"], now=started,
            actor=task["owner"],
        )
    )
    await alice.delete_task(task["id"])
    with pytest.raises(Forbidden):  # Taiga's answer to deleting it again (samples 120, 130)
        await alice.delete_task(task["id"])
    fake_taiga.clear_requests()

    busy = await undo(sqlite_database, plan_id, alice)  # the interrupted run might still be alive
    assert busy.state == "undoing" and deletes(fake_taiga) == []
    later = await undo(sqlite_database, plan_id, alice, now=lambda: started + timedelta(hours=1))

    assert later.state == "undone" and later.gone == [] and later.kept == []
    assert sorted(item.subject for item in later.removed) == sorted(PLAN_ITEMS)
    assert f"/tasks/{task['id']}" not in deletes(fake_taiga)
    assert not any(exists(fake_taiga, subject) for subject in PLAN_ITEMS)


@pytest.mark.anyio
async def test_a_lost_delete_response_is_settled_by_reading_the_item(
    sqlite_database: Database, fake_taiga: FakeTaiga, alice: TaigaSession
) -> None:
    plan_id = await applied(sqlite_database, alice)
    fake_taiga.lose_next_response(method="DELETE", path="/userstories/*")

    report = await undo(sqlite_database, plan_id, alice)

    assert report.state == "undone" and report.failed == []
    assert len(report.removed) == len(PLAN_ITEMS)


@pytest.mark.anyio
async def test_a_failed_delete_leaves_an_undo_that_a_retry_finishes(
    sqlite_database: Database, fake_taiga: FakeTaiga, alice: TaigaSession
) -> None:
    plan_id = await applied(sqlite_database, alice)
    fake_taiga.fail_next(500, method="DELETE", path="/userstories/*")

    first = await undo(sqlite_database, plan_id, alice)

    assert first.state == "undo_partial" and [i.subject for i in first.failed] == ["Story 1"]
    assert exists(fake_taiga, "Story 1") and exists(fake_taiga, "Sprint 7")
    assert await plan_state(sqlite_database, plan_id) == "undo_partial"
    fake_taiga.clear_requests()

    again = await undo(sqlite_database, plan_id, alice)

    assert again.state == "undone" and len(again.removed) == len(PLAN_ITEMS)
    assert [p.split("/")[1] for p in deletes(fake_taiga)] == ["userstories", "milestones"]


@pytest.mark.anyio
async def test_an_item_someone_deleted_is_reported_as_gone(
    sqlite_database: Database, fake_taiga: FakeTaiga, alice: TaigaSession
) -> None:
    plan_id = await applied(sqlite_database, alice)
    await alice.delete_task(named(fake_taiga, "Story 2 task 2")["id"])

    report = await undo(sqlite_database, plan_id, alice)

    assert [item.subject for item in report.gone] == ["Story 2 task 2"]
    assert report.state == "undone" and len(report.removed) == len(PLAN_ITEMS) - 1


@pytest.mark.anyio
async def test_the_fake_answers_deletes_like_taiga(
    fake_taiga: FakeTaiga, taiga_client: TaigaClient, alice: TaigaSession
) -> None:
    bob = session_as(fake_taiga, taiga_client, "bob")
    story = fake_taiga.add_story(PROJECT_ID, "Doomed")
    with pytest.raises(Forbidden):  # a viewer (sample 119)
        await bob.delete_user_story(story["id"])
    await alice.delete_user_story(story["id"])  # 204 (sample 118)
    with pytest.raises(Forbidden):  # already deleted: 403, not 404 (sample 120)
        await alice.delete_user_story(story["id"])
    with pytest.raises(NotFound):  # a read tells it is gone (sample 129)
        await alice.get_user_story(story["id"])


