"""Undo of a plan that moved existing stories into its sprint, against the fake Taiga: each moved
story goes back where it was (its sprint, or the backlog) unless someone changed it since, only
with `modify_us`, exactly once, and before the sprint the plan created is deleted."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from agent.executor import apply_plan
from agent.proposal import ProposedMove
from agent.undo import UndoItem, UndoRefused, UndoReport, undo_plan
from agent.undo.report import KEPT_CHANGED, report_lines
from bot.blocks.undo import undo_blocks
from storage import repositories as repo
from storage.db import Database
from taiga.client import TaigaClient, TaigaSession
from tests.peers.fake_taiga import PROJECT_ID, SPRINT5_ID, VIEW_PERMISSIONS, FakeTaiga
from tests.peers.taiga_sessions import session_as
from tests.test_executor import plan_state, proposal, store_plan

WEB = "https://taiga.example"
WINDOW = timedelta(minutes=30)
BULK_ONE = 4  # "Bulk story one", in the backlog (ref 4)
LOG_OUT = 2  # "As a user I can log out", in Sprint 5 (ref 2)
MOVES = [
    ProposedMove(key="move-4", story_id=BULK_ONE, ref=4, subject="Bulk story one", version=1),
    ProposedMove(
        key="move-2", story_id=LOG_OUT, ref=2, subject="As a user I can log out",
        from_milestone_id=SPRINT5_ID, from_sprint="Sprint 5", version=1,
    ),
]  # fmt: skip


async def applied_with_moves(db: Database, taiga: TaigaSession) -> str:
    """A plan of a new Sprint 7 with 2 new stories, taking #4 (backlog) and #2 (Sprint 5) in."""
    plan = proposal(new_sprint="Sprint 7")
    plan.moves = list(MOVES)
    plan_id = await store_plan(db, plan)
    result = await apply_plan(db=db, plan_id=plan_id, taiga=taiga, web_url=WEB)
    assert result.complete, result.failed
    return plan_id


async def undo(db: Database, plan_id: str, taiga: TaigaSession) -> UndoReport:
    return await undo_plan(db=db, plan_id=plan_id, taiga=taiga, window=WINDOW)


def story(fake: FakeTaiga, story_id: int) -> dict[str, Any]:
    return next(s for s in fake.stories(PROJECT_ID) if s["id"] == story_id)


def sprint_exists(fake: FakeTaiga, name: str) -> bool:
    return any(m["name"] == name for m in fake.milestones(PROJECT_ID))


@pytest.mark.anyio
async def test_undo_moves_the_moved_stories_back_before_deleting_the_sprint(
    sqlite_database: Database, fake_taiga: FakeTaiga, alice: TaigaSession
) -> None:
    plan_id = await applied_with_moves(sqlite_database, alice)
    assert story(fake_taiga, BULK_ONE)["milestone"] == story(fake_taiga, LOG_OUT)["milestone"]
    fake_taiga.clear_requests()

    report = await undo(sqlite_database, plan_id, alice)

    assert report.state == "undone" and report.kept == [] and report.failed == []
    back = {(item.ref, item.subject, item.reason) for item in report.moved_back}
    assert back == {
        (4, "Bulk story one", "back to the backlog"),
        (2, "As a user I can log out", "back to Sprint 5"),
    }
    assert story(fake_taiga, BULK_ONE)["milestone"] is None
    assert story(fake_taiga, LOG_OUT)["milestone"] == SPRINT5_ID
    assert [p.json for p in fake_taiga.requests_to("PATCH", "/userstories/4")] == [
        {"milestone": None, "version": 2}
    ]
    # Moved back before the sprint went: it was empty, so it is deleted, not kept.
    assert not sprint_exists(fake_taiga, "Sprint 7")
    assert "Sprint 7" in {item.subject for item in report.removed}
    kinds = [r.path.split("/")[1] for r in fake_taiga.requests if r.method in {"PATCH", "DELETE"}]
    assert kinds[-1] == "milestones" and kinds.count("userstories") == 4  # 2 moves, 2 deletes
    assert "Moved back (2):" in report_lines(report)

    ledger = await sqlite_database.run(lambda s: repo.ledger_for_plan(s, plan_id))
    assert ledger["undo:move:move-4"].done and ledger["undo:move:move-4"].taiga_version == 3
    # Asking again moves nothing twice.
    fake_taiga.clear_requests()
    assert await undo(sqlite_database, plan_id, alice) == report
    assert fake_taiga.requests_to("PATCH", "/userstories/*") == []


@pytest.mark.anyio
async def test_a_moved_story_changed_since_stays_and_keeps_the_sprint(
    sqlite_database: Database, fake_taiga: FakeTaiga, alice: TaigaSession
) -> None:
    plan_id = await applied_with_moves(sqlite_database, alice)
    sprint7 = story(fake_taiga, BULK_ONE)["milestone"]
    fake_taiga.edit("story", BULK_ONE, description="Refined in the sprint")
    fake_taiga.clear_requests()

    report = await undo(sqlite_database, plan_id, alice)

    kept = {item.subject: item.reason for item in report.kept}
    assert kept["Bulk story one"] == KEPT_CHANGED
    assert [item.subject for item in report.moved_back] == ["As a user I can log out"]
    assert story(fake_taiga, BULK_ONE)["milestone"] == sprint7
    assert story(fake_taiga, BULK_ONE)["description"] == "Refined in the sprint"
    assert fake_taiga.requests_to("PATCH", "/userstories/4") == []
    assert sprint_exists(fake_taiga, "Sprint 7")  # it still holds the kept story
    assert report.state == "undone"


@pytest.mark.anyio
async def test_a_lost_move_back_answer_is_settled_by_reading_the_story(
    sqlite_database: Database, fake_taiga: FakeTaiga, alice: TaigaSession
) -> None:
    plan_id = await applied_with_moves(sqlite_database, alice)
    fake_taiga.lose_next_response(method="PATCH", path="/userstories/*")

    report = await undo(sqlite_database, plan_id, alice)

    assert report.state == "undone" and report.failed == [] and report.kept == []
    assert len(report.moved_back) == 2
    assert story(fake_taiga, BULK_ONE)["milestone"] is None
    assert story(fake_taiga, LOG_OUT)["milestone"] == SPRINT5_ID


@pytest.mark.anyio
async def test_undo_of_moves_is_refused_without_modify_us(
    sqlite_database: Database, fake_taiga: FakeTaiga, taiga_client: TaigaClient, alice: TaigaSession
) -> None:
    plan_id = await applied_with_moves(sqlite_database, alice)
    fake_taiga.add_user("carol", "carol123", full_name="Carol Deleter")
    deleter = (*VIEW_PERMISSIONS, "delete_task", "delete_us", "delete_milestone")
    fake_taiga.add_member(PROJECT_ID, "carol", fake_taiga.add_role(PROJECT_ID, "Deleter", deleter))
    carol = session_as(fake_taiga, taiga_client, "carol")
    sprint7 = story(fake_taiga, BULK_ONE)["milestone"]
    fake_taiga.clear_requests()

    with pytest.raises(UndoRefused, match=r"lacks modify_us\. Nothing was changed"):
        await undo(sqlite_database, plan_id, carol)

    assert [r for r in fake_taiga.requests if r.method != "GET"] == []
    assert story(fake_taiga, BULK_ONE)["milestone"] == sprint7
    assert await plan_state(sqlite_database, plan_id) == "done"


def test_the_undo_message_says_what_was_moved_back() -> None:
    item = UndoItem(kind="move", action_key="move:move-4", subject="Bulk story one", ref=4)
    moved = item.model_copy(update={"reason": "back to the backlog"})
    report = UndoReport(plan_id="p1", state="undone", moved_back=[moved])

    message = undo_blocks(report, undone_by=None)

    text = str(message.as_kwargs())
    assert "0 items removed from Taiga, 1 story moved back" in text
    assert "Moved back (1)" in text and "story #4 Bulk story one: back to the backlog" in text
