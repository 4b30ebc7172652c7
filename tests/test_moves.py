"""Existing stories moved into the target sprint, and likely duplicates left out: proposed by the
loop and applied by the executor, against the fake Taiga (and the fake Anthropic)."""

from __future__ import annotations

from typing import Any

import pytest
from anthropic import AsyncAnthropic

from agent.budgets import Budgets
from agent.executor import SKIPPED_NO_STORY, ExecutionResult, apply_plan
from agent.executor.moves import CHANGED_NOT_MOVED, SKIPPED_NOT_MOVED
from agent.loop import propose
from agent.proposal import ProjectInfo, Proposal, ProposedMilestone, ProposedMove, ProposedTask
from storage import repositories as repo
from storage.db import Database
from taiga.client import TaigaSession
from tests.peers.clock import FakeClock
from tests.peers.fake_anthropic import FakeAnthropic, message, text, tool_use
from tests.peers.fake_taiga import PROJECT_ID, PROJECT_SLUG, SPRINT5_ID, SPRINT6_ID, FakeTaiga

WEB = "https://taiga.example"
BULK_ONE = 4  # "Bulk story one", in the backlog (ref 4)
LOG_OUT = 2  # "As a user I can log out", in Sprint 5 (ref 2)


async def _propose(fake_anthropic: FakeAnthropic, alice: TaigaSession) -> Proposal:
    anthropic = AsyncAnthropic(base_url=fake_anthropic.base_url, api_key="test", max_retries=0)
    try:
        return await propose(
            anthropic=anthropic,
            model="claude-test",
            taiga=alice,
            project_ref=PROJECT_SLUG,
            sprint_name="Sprint 6",
            minutes="We take #4 and the logout story into this sprint.",
            budgets=Budgets(),
            clock=FakeClock(),
        )
    finally:
        await anthropic.close()


def _move(story_id: int, ref: int, subject: str, from_id: int | None) -> ProposedMove:
    return ProposedMove(
        key=f"move-{story_id}",
        story_id=story_id,
        ref=ref,
        subject=subject,
        from_milestone_id=from_id,
        version=1,
    )


def _plan(*moves: ProposedMove, tasks: list[ProposedTask] | None = None) -> Proposal:
    return Proposal(
        project=ProjectInfo(id=PROJECT_ID, slug=PROJECT_SLUG, name="Peer Client Test"),
        target_sprint="Sprint 6",
        milestone=ProposedMilestone(existing_id=SPRINT6_ID, name="Sprint 6", slug="sprint-6"),
        moves=list(moves),
        tasks_for_existing=tasks or [],
    )


async def _apply(db: Database, plan: Proposal, session: TaigaSession) -> ExecutionResult:
    def store(s: Any) -> str:
        return repo.create_plan(
            s, slack_team_id="T1", slack_channel_id="C1", slack_thread_ts="1.1",
            project_id=PROJECT_ID, project_slug=PROJECT_SLUG, target_sprint="Sprint 6",
            minutes_digest="0" * 64, state="approved", proposal=plan.model_dump(mode="json"),
        ).id  # fmt: skip

    plan_id = await db.run(store)
    return await apply_plan(db=db, plan_id=plan_id, taiga=session, web_url=WEB)


def _story(fake: FakeTaiga, story_id: int) -> dict[str, Any]:
    return next(s for s in fake.stories(PROJECT_ID) if s["id"] == story_id)


# --------------------------------------------------------------------------- proposing


@pytest.mark.anyio
async def test_the_model_sees_the_open_stories_outside_the_sprint_and_proposes_moves(
    fake_taiga: FakeTaiga, fake_anthropic: FakeAnthropic, alice: TaigaSession
) -> None:
    fake_anthropic.script(
        message(
            text("Moving two stories in."),
            tool_use("taiga_move_user_story", {"user_story": BULK_ONE}),
            tool_use("taiga_move_user_story", {"user_story": LOG_OUT}),
        )
    )
    proposal = await _propose(fake_anthropic, alice)

    first = fake_anthropic.requests[0].raw
    assert "open_stories_outside_target_sprint" in first
    assert "Bulk story one" in first and "As a user I can log out" in first
    moves = [(m.key, m.ref, m.from_milestone_id, m.from_sprint, m.version) for m in proposal.moves]
    assert moves == [
        ("move-4", 4, None, None, 1),
        ("move-2", 2, SPRINT5_ID, "Sprint 5", 1),
    ]
    assert [a.key for a in proposal.actions()] == ["move:move-4", "move:move-2"]
    assert {r.method for r in fake_taiga.requests} == {"GET"}  # nothing written while proposing
    # All stories came in one list read, alongside the sprints: no extra round trip.
    assert len(fake_taiga.requests_to("GET", "/userstories")) == 1


@pytest.mark.anyio
async def test_a_story_already_in_the_sprint_or_closed_is_not_moved(
    fake_taiga: FakeTaiga, fake_anthropic: FakeAnthropic, alice: TaigaSession
) -> None:
    fake_anthropic.script(
        message(tool_use("taiga_move_user_story", {"user_story": 3})),  # Export report
        message(text("Nothing to move.")),
    )
    proposal = await _propose(fake_anthropic, alice)
    assert proposal.moves == []
    assert "is already in Sprint 6" in fake_anthropic.requests[1].raw


@pytest.mark.anyio
async def test_a_likely_duplicate_is_left_out_with_the_story_it_duplicates(
    fake_taiga: FakeTaiga, fake_anthropic: FakeAnthropic, alice: TaigaSession
) -> None:
    fake_anthropic.script(
        message(
            text("Planned."),
            tool_use("taiga_create_user_story", {"subject": "Bulk Story: One"}),
            tool_use("taiga_create_user_story", {"subject": "As a user I can reset my password"}),
        ),
    )
    proposal = await _propose(fake_anthropic, alice)

    duplicate, fresh = proposal.stories
    assert duplicate.duplicate_of is not None
    assert (duplicate.duplicate_of.id, duplicate.duplicate_of.ref) == (BULK_ONE, 4)
    assert duplicate.duplicate_of.sprint is None  # the backlog
    assert fresh.duplicate_of is None
    assert proposal.left_out == ["new-story-1"]
    assert [a.key for a in proposal.actions()] == ["story:new-story-2"]
    assert len(fake_anthropic.requests) == 1  # still one model call for the plan


# --------------------------------------------------------------------------- applying


@pytest.mark.anyio
async def test_a_backlog_move_is_applied_with_its_version_and_recorded_for_undo(
    sqlite_database: Database, fake_taiga: FakeTaiga, alice: TaigaSession
) -> None:
    plan = _plan(
        _move(BULK_ONE, 4, "Bulk story one", None),
        _move(LOG_OUT, 2, "As a user I can log out", SPRINT5_ID),
        tasks=[ProposedTask(key="existing-4/task-1", subject="Split it", user_story_id=BULK_ONE)],
    )
    result = await _apply(sqlite_database, plan, alice)

    assert result.complete, result.failed
    assert _story(fake_taiga, BULK_ONE)["milestone"] == SPRINT6_ID
    assert _story(fake_taiga, LOG_OUT)["milestone"] == SPRINT6_ID
    patches = fake_taiga.requests_to("PATCH", "/userstories/4")
    assert [p.json for p in patches] == [{"milestone": SPRINT6_ID, "version": 1}]
    moved = result.created_of("move")
    assert (moved[0].id, moved[0].url) == (BULK_ONE, f"{WEB}/project/{PROJECT_SLUG}/us/4")
    task = next(t for t in fake_taiga.tasks(PROJECT_ID) if t["subject"] == "Split it")
    assert (task["user_story"], task["milestone"]) == (BULK_ONE, SPRINT6_ID)

    ledger = await sqlite_database.run(lambda s: repo.ledger_for_plan(s, result.plan_id))
    assert ledger["move:move-4"].previous_milestone_id is None
    assert ledger["move:move-2"].previous_milestone_id == SPRINT5_ID
    assert ledger["move:move-4"].taiga_version == 2


@pytest.mark.anyio
async def test_a_story_changed_in_taiga_since_the_proposal_is_reported_and_not_written(
    sqlite_database: Database, fake_taiga: FakeTaiga, alice: TaigaSession
) -> None:
    # Taiga itself would accept the move: its version check covers only the fields sent.
    fake_taiga.edit("story", BULK_ONE, description="Someone refined this meanwhile.")
    plan = _plan(
        _move(BULK_ONE, 4, "Bulk story one", None),
        tasks=[ProposedTask(key="existing-4/task-1", subject="Split it", user_story_id=BULK_ONE)],
    )
    result = await _apply(sqlite_database, plan, alice)

    assert not result.complete
    reasons = {f.action_key: f.reason for f in result.failed}
    assert reasons == {
        "move:move-4": CHANGED_NOT_MOVED,
        "task:existing-4/task-1": SKIPPED_NOT_MOVED,
    }
    assert SKIPPED_NOT_MOVED != SKIPPED_NO_STORY
    assert fake_taiga.requests_to("PATCH", "/userstories/*") == []
    story = _story(fake_taiga, BULK_ONE)
    assert story["milestone"] is None
    assert story["description"] == "Someone refined this meanwhile."
    assert not any(t["subject"] == "Split it" for t in fake_taiga.tasks(PROJECT_ID))


@pytest.mark.anyio
async def test_a_move_whose_answer_was_lost_is_adopted_not_sent_again(
    sqlite_database: Database, fake_taiga: FakeTaiga, alice: TaigaSession
) -> None:
    fake_taiga.lose_next_response(method="PATCH", path="/userstories/*")
    result = await _apply(sqlite_database, _plan(_move(BULK_ONE, 4, "Bulk story one", None)), alice)

    assert result.complete, result.failed
    assert result.created_of("move")[0].reconciled
    assert len(fake_taiga.requests_to("PATCH", "/userstories/4")) == 1
    assert _story(fake_taiga, BULK_ONE)["version"] == 2
