"""The plan executor against the fake Taiga: exactly-once writes through the write ledger."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from agent.executor import (
    NOT_CONFIRMED,
    SKIPPED_NO_SPRINT,
    SKIPPED_NO_STORY,
    ExecutionResult,
    PlanNotApproved,
    apply_plan,
)
from agent.progress import Step
from agent.proposal import (
    ProjectInfo,
    Proposal,
    ProposedMilestone,
    ProposedStory,
    ProposedTask,
)
from storage import repositories as repo
from storage.db import Database
from storage.models import WriteLedger
from taiga.client import TaigaClient, TaigaSession
from taiga.models import TaigaTokens
from tests.peers.clock import FakeClock
from tests.peers.fake_taiga import (
    ALICE_ID,
    PROJECT_ID,
    PROJECT_SLUG,
    SPRINT6_ID,
    VIEW_PERMISSIONS,
    FakeTaiga,
)
from tests.peers.taiga_sessions import session_as

WEB = "https://taiga.example"


# --------------------------------------------------------------------------- helpers


def proposal(
    *,
    stories: int = 2,
    tasks: int = 2,
    new_sprint: str | None = None,
    existing_story_tasks: int = 0,
) -> Proposal:
    if new_sprint is not None:
        milestone = ProposedMilestone(
            name=new_sprint,
            estimated_start=date(2024, 5, 29),
            estimated_finish=date(2024, 6, 11),
            to_create=True,
        )
    else:
        milestone = ProposedMilestone(existing_id=SPRINT6_ID, name="Sprint 6", slug="sprint-6")
    return Proposal(
        project=ProjectInfo(id=PROJECT_ID, slug=PROJECT_SLUG, name="Peer Client Test"),
        target_sprint=milestone.name,
        milestone=milestone,
        stories=[
            ProposedStory(
                key=f"new-story-{s}",
                subject=f"Story {s}",
                description=f"About story {s}",
                tags=["planned"],
                tasks=[
                    ProposedTask(key=f"new-story-{s}/task-{t}", subject=f"Story {s} task {t}")
                    for t in range(1, tasks + 1)
                ],
            )
            for s in range(1, stories + 1)
        ],
        tasks_for_existing=[
            ProposedTask(
                key=f"existing-3/task-{t}",
                subject=f"Export task {t}",
                user_story_id=3,
                user_story_ref=3,
                user_story_subject="Export report",
            )
            for t in range(1, existing_story_tasks + 1)
        ],
    )


async def store_plan(
    db: Database, plan: Proposal, *, state: str = "approved", lease_until: datetime | None = None
) -> str:
    """A stored plan; in `executing` it is held by another run until `lease_until` (default:
    an hour from now, a live run)."""
    lease: dict[str, Any] = {}
    if state == "executing":
        until = lease_until or datetime.now(UTC) + timedelta(hours=1)
        lease = {"lease_owner": "another-run", "lease_until": until}

    def create(session: Any) -> str:
        row = repo.create_plan(
            session,
            slack_team_id="T1",
            slack_channel_id="C1",
            slack_thread_ts="1.1",
            project_id=PROJECT_ID,
            project_slug=PROJECT_SLUG,
            target_sprint=plan.target_sprint,
            minutes_digest="0" * 64,
            state=state,
            proposal=plan.model_dump(mode="json"),
            **lease,
        )
        return row.id

    return await db.run(create)


async def plan_state(db: Database, plan_id: str) -> str:
    return await db.run(lambda s: repo.get_plan(s, plan_id).state)  # type: ignore[union-attr]


async def claim_pending(
    db: Database, plan_id: str, keys: list[str], *, at: datetime, actor: int = ALICE_ID
) -> None:
    """Ledger rows left pending by an earlier run of `actor` (a crash, a lost response)."""

    await db.run(
        lambda s: repo.claim_actions(s, plan_id=plan_id, action_keys=keys, now=at, actor=actor)
    )


def posts(fake: FakeTaiga, path: str) -> list[Any]:
    return fake.requests_to("POST", path)


def story_rows(fake: FakeTaiga, subject: str) -> list[dict[str, Any]]:
    return [s for s in fake.stories(PROJECT_ID) if s["subject"] == subject]


@pytest.fixture
def carol(fake_taiga: FakeTaiga, taiga_client: TaigaClient) -> TaigaSession:
    """Another member who may add stories and tasks (the seeded bob may only view)."""
    fake_taiga.add_user("carol", "carol123", full_name="Carol Writer")
    writer = fake_taiga.add_role(PROJECT_ID, "Writer", (*VIEW_PERMISSIONS, "add_us", "add_task"))
    fake_taiga.add_member(PROJECT_ID, "carol", writer)
    return session_as(fake_taiga, taiga_client, "carol")


async def apply(
    db: Database, plan_id: str, session: TaigaSession, **kwargs: Any
) -> ExecutionResult:
    return await apply_plan(db=db, plan_id=plan_id, taiga=session, web_url=WEB, **kwargs)


# --------------------------------------------------------------------------- behaviour


@pytest.mark.anyio
async def test_placeholders_resolve_to_the_sprint_and_stories_just_created(
    sqlite_database: Database, fake_taiga: FakeTaiga, alice: TaigaSession
) -> None:
    plan_id = await store_plan(sqlite_database, proposal(new_sprint="Sprint 7"))

    result = await apply(sqlite_database, plan_id, alice)

    assert result.complete and result.state == "done" and result.failed == []
    sprint = next(m for m in fake_taiga.milestones(PROJECT_ID) if m["name"] == "Sprint 7")
    assert result.milestone_id == sprint["id"]
    assert result.milestone_url == f"{WEB}/project/{PROJECT_SLUG}/taskboard/{sprint['slug']}"
    stories = {s["subject"]: s for s in fake_taiga.stories(PROJECT_ID)}
    tasks = {t["subject"]: t for t in fake_taiga.tasks(PROJECT_ID)}
    for s in (1, 2):
        story = stories[f"Story {s}"]
        assert story["milestone"] == sprint["id"]
        for t in (1, 2):
            task = tasks[f"Story {s} task {t}"]
            assert task["user_story"] == story["id"]
            assert task["milestone"] == sprint["id"]
    created = {item.action_key: item for item in result.created}
    assert created["story:new-story-1"].id == stories["Story 1"]["id"]
    assert created["story:new-story-1"].url == f"{WEB}/project/{PROJECT_SLUG}/us/" + str(
        stories["Story 1"]["ref"]
    )
    task = created["task:new-story-2/task-1"]
    assert task.user_story_id == stories["Story 2"]["id"]
    assert task.url == f"{WEB}/project/{PROJECT_SLUG}/task/{tasks['Story 2 task 1']['ref']}"
    # One POST each, never the bulk endpoints (they cannot carry a sprint).
    assert len(posts(fake_taiga, "/milestones")) == 1
    assert len(posts(fake_taiga, "/userstories")) == 2
    assert len(posts(fake_taiga, "/tasks")) == 4
    assert posts(fake_taiga, "/*bulk*") == []
    assert await plan_state(sqlite_database, plan_id) == "done"
    ledger = await sqlite_database.run(lambda s: repo.ledger_for_plan(s, plan_id))
    assert len(ledger) == 7 and all(entry.done for entry in ledger.values())


@pytest.mark.anyio
async def test_each_phase_records_all_its_writes_as_pending_at_once_before_sending(
    sqlite_database: Database, fake_taiga: FakeTaiga, alice: TaigaSession
) -> None:
    """One ledger transaction claims a whole phase (SQLite admits one writer at a time): with a
    clock that ticks on every reading, the writes of a phase share one attempt time."""
    plan_id = await store_plan(sqlite_database, proposal(new_sprint="Sprint 7", stories=3))
    start = datetime.now(UTC)
    ticks = itertools.count()

    result = await apply(
        sqlite_database, plan_id, alice, now=lambda: start + timedelta(seconds=next(ticks))
    )

    assert result.complete
    ledger = await sqlite_database.run(lambda s: repo.ledger_for_plan(s, plan_id))
    attempts = {
        kind: {e.attempted_at for key, e in ledger.items() if key.startswith(kind)}
        for kind in ("milestone", "story", "task")
    }
    assert [len(times) for times in attempts.values()] == [1, 1, 1]
    assert max(attempts["milestone"]) < max(attempts["story"]) < max(attempts["task"])


@pytest.mark.anyio
async def test_tasks_for_existing_stories_go_to_that_story_in_the_sprint(
    sqlite_database: Database, fake_taiga: FakeTaiga, alice: TaigaSession
) -> None:
    plan_id = await store_plan(sqlite_database, proposal(stories=0, existing_story_tasks=2))

    result = await apply(sqlite_database, plan_id, alice)

    assert result.complete
    new = [t for t in fake_taiga.tasks(PROJECT_ID) if t["subject"].startswith("Export task")]
    assert [(t["user_story"], t["milestone"]) for t in new] == [(3, SPRINT6_ID), (3, SPRINT6_ID)]
    assert posts(fake_taiga, "/milestones") == []


@pytest.mark.anyio
async def test_a_sprint_deleted_in_taiga_since_the_plan_is_one_plain_error_per_item(
    sqlite_database: Database, fake_taiga: FakeTaiga, alice: TaigaSession
) -> None:
    plan = proposal(stories=1, tasks=1, existing_story_tasks=1)
    assert plan.milestone is not None
    plan.milestone.existing_id = 987  # the proposal's sprint no longer exists in Taiga
    plan_id = await store_plan(sqlite_database, plan)

    result = await apply(sqlite_database, plan_id, alice)

    assert result.state == "partial" and result.created == []
    reasons = {item.action_key: item.reason for item in result.failed}
    gone = (
        "Taiga could not find sprint Sprint 6: it was deleted in Taiga after the plan was made, "
        "so plan again."
    )
    assert reasons["story:new-story-1"] == gone
    assert reasons["task:existing-3/task-1"] == gone
    assert "Invalid pk" not in " ".join(reasons.values())


@pytest.mark.anyio
async def test_applying_twice_writes_once(
    sqlite_database: Database, fake_taiga: FakeTaiga, alice: TaigaSession
) -> None:
    plan_id = await store_plan(sqlite_database, proposal())
    first = await apply(sqlite_database, plan_id, alice)
    writes = len(fake_taiga.requests_to("POST", "*"))

    second = await apply(sqlite_database, plan_id, alice)

    assert second == first
    assert len(fake_taiga.requests_to("POST", "*")) == writes == 6


@pytest.mark.anyio
async def test_concurrent_applies_of_one_plan_write_once(
    database: Database, fake_taiga: FakeTaiga
) -> None:
    """Two replicas (own database engine, own Taiga client) apply the same plan at once."""
    plan_id = await store_plan(database, proposal(new_sprint="Sprint 7", stories=3, tasks=2))
    other_db = Database(database.url.render_as_string(hide_password=False))
    clients = [TaigaClient(fake_taiga.api_url, clock=FakeClock()) for _ in range(2)]
    try:
        sessions = [c.session(TaigaTokens(**fake_taiga.login_tokens("alice"))) for c in clients]
        results = await asyncio.gather(
            apply(database, plan_id, sessions[0]), apply(other_db, plan_id, sessions[1])
        )
    finally:
        for c in clients:
            await c.aclose()
        other_db.dispose()

    assert len(posts(fake_taiga, "/milestones")) == 1
    assert len(posts(fake_taiga, "/userstories")) == 3
    assert len(posts(fake_taiga, "/tasks")) == 6
    assert sorted(r.state for r in results) in (["done", "done"], ["done", "executing"])
    assert await plan_state(database, plan_id) == "done"


@pytest.mark.anyio
async def test_an_apply_running_elsewhere_is_reported_and_nothing_is_written(
    sqlite_database: Database, fake_taiga: FakeTaiga, alice: TaigaSession
) -> None:
    plan_id = await store_plan(sqlite_database, proposal(), state="executing")

    result = await apply(sqlite_database, plan_id, alice)

    assert result.state == "executing" and not result.complete
    assert fake_taiga.requests_to("POST", "*") == []


@pytest.mark.anyio
async def test_a_plan_that_was_not_approved_is_refused(
    sqlite_database: Database, fake_taiga: FakeTaiga, alice: TaigaSession
) -> None:
    plan_id = await store_plan(sqlite_database, proposal(), state="proposed")

    with pytest.raises(PlanNotApproved):
        await apply(sqlite_database, plan_id, alice)

    assert fake_taiga.requests_to("POST", "*") == []
    assert await plan_state(sqlite_database, plan_id) == "proposed"


@pytest.mark.anyio
async def test_a_taiga_500_on_one_task_leaves_a_partial_result_and_the_retry_adds_only_it(
    sqlite_database: Database, fake_taiga: FakeTaiga, alice: TaigaSession
) -> None:
    plan_id = await store_plan(sqlite_database, proposal(stories=2, tasks=2))
    fake_taiga.fail_next(500, method="POST", path="/tasks")

    first = await apply(sqlite_database, plan_id, alice)

    assert first.state == "partial" and not first.complete
    assert len(first.created_of("story")) == 2 and len(first.created_of("task")) == 3
    [missing] = first.failed
    assert missing.kind == "task" and not missing.skipped
    assert "Taiga" in missing.reason and "500" in missing.reason
    assert await plan_state(sqlite_database, plan_id) == "partial"
    stored = await sqlite_database.run(lambda s: repo.get_plan(s, plan_id))
    assert stored is not None and stored.result == first.model_dump(mode="json")
    fake_taiga.clear_requests()

    second = await apply(sqlite_database, plan_id, alice)

    assert second.complete and second.state == "done"
    assert len(second.created_of("task")) == 4
    assert [r.json["subject"] for r in posts(fake_taiga, "/tasks")] == [missing.subject]
    assert posts(fake_taiga, "/userstories") == []
    assert [t["subject"] for t in fake_taiga.tasks(PROJECT_ID)].count(missing.subject) == 1


@pytest.mark.anyio
async def test_tasks_of_a_story_that_failed_are_skipped_and_created_on_retry(
    sqlite_database: Database, fake_taiga: FakeTaiga, alice: TaigaSession
) -> None:
    plan_id = await store_plan(sqlite_database, proposal(stories=1, tasks=2))
    fake_taiga.fail_next(503, method="POST", path="/userstories")

    first = await apply(sqlite_database, plan_id, alice)

    assert [(f.kind, f.skipped) for f in first.failed] == [
        ("story", False),
        ("task", True),
        ("task", True),
    ]
    assert [f.reason for f in first.failed[1:]] == [SKIPPED_NO_STORY, SKIPPED_NO_STORY]
    assert posts(fake_taiga, "/tasks") == []

    second = await apply(sqlite_database, plan_id, alice)

    assert second.complete
    assert len(story_rows(fake_taiga, "Story 1")) == 1


@pytest.mark.anyio
async def test_a_sprint_that_could_not_be_created_skips_everything(
    sqlite_database: Database, fake_taiga: FakeTaiga, alice: TaigaSession
) -> None:
    plan_id = await store_plan(sqlite_database, proposal(new_sprint="Sprint 7", stories=1))
    fake_taiga.fail_next(500, method="POST", path="/milestones")

    result = await apply(sqlite_database, plan_id, alice)

    assert [f.kind for f in result.failed] == ["milestone", "story", "task", "task"]
    assert {f.reason for f in result.failed[1:]} == {SKIPPED_NO_SPRINT}
    assert posts(fake_taiga, "/userstories") == []


@pytest.mark.anyio
async def test_a_story_created_but_whose_response_was_lost_is_adopted_not_duplicated(
    sqlite_database: Database, fake_taiga: FakeTaiga, alice: TaigaSession
) -> None:
    plan_id = await store_plan(sqlite_database, proposal(stories=1, tasks=2))
    fake_taiga.lose_next_response(method="POST", path="/userstories")

    result = await apply(sqlite_database, plan_id, alice)

    assert result.complete
    [row] = story_rows(fake_taiga, "Story 1")
    [story] = result.created_of("story")
    assert story.id == row["id"] and story.ref == row["ref"] and story.reconciled
    assert len(posts(fake_taiga, "/userstories")) == 1
    assert {t.user_story_id for t in result.created_of("task")} == {row["id"]}


@pytest.mark.anyio
async def test_a_task_whose_response_was_lost_is_adopted_not_duplicated(
    sqlite_database: Database, fake_taiga: FakeTaiga, alice: TaigaSession
) -> None:
    plan_id = await store_plan(sqlite_database, proposal(stories=1, tasks=3))
    fake_taiga.lose_next_response(method="POST", path="/tasks")

    result = await apply(sqlite_database, plan_id, alice)

    assert result.complete and len(result.created_of("task")) == 3
    assert len(posts(fake_taiga, "/tasks")) == 3
    subjects = [t["subject"] for t in fake_taiga.tasks(PROJECT_ID)]
    assert all(subjects.count(f"Story 1 task {t}") == 1 for t in (1, 2, 3))
    assert sum(item.reconciled for item in result.created) == 1


@pytest.mark.anyio
async def test_a_lost_response_not_found_in_taiga_is_not_resent_until_retry(
    sqlite_database: Database, fake_taiga: FakeTaiga, alice: TaigaSession
) -> None:
    """A gateway gives up on the story POST (nothing saved): the run does not send it again, its
    tasks wait, and Retry checks Taiga, then creates the story exactly once."""
    plan_id = await store_plan(sqlite_database, proposal(stories=2, tasks=1))
    fake_taiga.fail_next(504, method="POST", path="/userstories")

    first = await apply(sqlite_database, plan_id, alice)

    assert first.state == "partial"
    [story, task] = first.failed
    assert (story.kind, story.reason, story.skipped) == ("story", NOT_CONFIRMED, False)
    assert (task.kind, task.story_key, task.skipped) == ("task", story.action_key, True)
    assert len(posts(fake_taiga, "/userstories")) == 2
    assert story_rows(fake_taiga, story.subject) == []
    ledger = await sqlite_database.run(lambda s: repo.ledger_for_plan(s, plan_id))
    assert ledger[story.action_key].state == "pending"

    second = await apply(sqlite_database, plan_id, alice)

    assert second.complete
    assert len(story_rows(fake_taiga, story.subject)) == 1
    assert len(posts(fake_taiga, "/userstories")) == 3
    assert [t["subject"] for t in fake_taiga.tasks(PROJECT_ID)].count(task.subject) == 1


@pytest.mark.anyio
async def test_a_lost_story_that_taiga_saves_late_is_adopted_on_retry_not_duplicated(
    sqlite_database: Database, fake_taiga: FakeTaiga, alice: TaigaSession
) -> None:
    plan_id = await store_plan(sqlite_database, proposal(stories=1, tasks=0))
    fake_taiga.fail_next(504, method="POST", path="/userstories")
    first = await apply(sqlite_database, plan_id, alice)
    # Taiga finishes saving the first request (with the reference it carried) after the run
    # looked for it.
    [sent] = posts(fake_taiga, "/userstories")
    late = fake_taiga.add_story(
        PROJECT_ID, "Story 1", milestone_id=SPRINT6_ID, owner="alice",
        external_reference=sent.json["external_reference"],
    )  # fmt: skip

    second = await apply(sqlite_database, plan_id, alice)

    assert first.failed[0].reason == NOT_CONFIRMED
    assert second.complete and second.created_of("story")[0].id == late["id"]
    assert len(story_rows(fake_taiga, "Story 1")) == 1
    assert len(posts(fake_taiga, "/userstories")) == 1


@pytest.mark.anyio
async def test_a_lost_sprint_response_is_adopted_by_name(
    sqlite_database: Database, fake_taiga: FakeTaiga, alice: TaigaSession
) -> None:
    plan_id = await store_plan(sqlite_database, proposal(new_sprint="Sprint 7", stories=1))
    fake_taiga.lose_next_response(method="POST", path="/milestones")

    result = await apply(sqlite_database, plan_id, alice)

    assert result.complete
    assert [m["name"] for m in fake_taiga.milestones(PROJECT_ID)].count("Sprint 7") == 1
    assert len(posts(fake_taiga, "/milestones")) == 1


@pytest.mark.anyio
async def test_after_a_crash_pending_writes_are_reconciled_before_anything_is_resent(
    sqlite_database: Database, fake_taiga: FakeTaiga, alice: TaigaSession
) -> None:
    """A replica died mid-run: the plan is stuck in executing, two stories were claimed, one of
    them reached Taiga. The next apply takes over, adopts that one and creates the other."""
    db = sqlite_database
    crashed_at = datetime.now(UTC) - timedelta(hours=1)
    plan_id = await store_plan(
        db, proposal(stories=3, tasks=0), state="executing", lease_until=crashed_at
    )
    await claim_pending(db, plan_id, ["story:new-story-1", "story:new-story-2"], at=crashed_at)
    await db.run(lambda s: repo.update_plan(s, plan_id=plan_id, updated_at=crashed_at))
    reached = fake_taiga.add_story(PROJECT_ID, "Story 1", milestone_id=SPRINT6_ID, owner="alice")

    result = await apply(db, plan_id, alice, now=lambda: crashed_at + timedelta(hours=1))

    assert result.complete
    by_key = {item.action_key: item for item in result.created}
    assert by_key["story:new-story-1"].id == reached["id"]
    assert by_key["story:new-story-1"].reconciled
    sent = sorted(r.json["subject"] for r in posts(fake_taiga, "/userstories"))
    assert sent == ["Story 2", "Story 3"]
    assert all(len(story_rows(fake_taiga, f"Story {n}")) == 1 for n in (1, 2, 3))


@pytest.mark.anyio
async def test_reconciling_ignores_same_subject_stories_from_before_the_attempt_or_others(
    sqlite_database: Database, fake_taiga: FakeTaiga, alice: TaigaSession
) -> None:
    db = sqlite_database
    plan_id = await store_plan(db, proposal(stories=2, tasks=0), state="partial")
    now = datetime.now(UTC)
    attempts = {"story:new-story-1": now + timedelta(minutes=30), "story:new-story-2": now}
    for key, at in attempts.items():
        await claim_pending(db, plan_id, [key], at=at)
    # Same subjects in the sprint: one made long before our attempt, one made by someone else.
    fake_taiga.add_story(PROJECT_ID, "Story 1", milestone_id=SPRINT6_ID, owner="alice")
    fake_taiga.add_story(PROJECT_ID, "Story 2", milestone_id=SPRINT6_ID, owner="bob")

    result = await apply(db, plan_id, alice)

    assert result.complete and not any(item.reconciled for item in result.created)
    assert len(story_rows(fake_taiga, "Story 1")) == 2
    assert len(story_rows(fake_taiga, "Story 2")) == 2


@pytest.mark.anyio
async def test_two_stories_with_one_subject_are_never_adopted_twice(
    sqlite_database: Database, fake_taiga: FakeTaiga, alice: TaigaSession
) -> None:
    db = sqlite_database
    twins = proposal(stories=2, tasks=0)
    for story in twins.stories:
        story.subject = "Same subject"
    plan_id = await store_plan(db, twins, state="partial")
    now = datetime.now(UTC)
    await claim_pending(db, plan_id, ["story:new-story-1", "story:new-story-2"], at=now)
    fake_taiga.add_story(PROJECT_ID, "Same subject", milestone_id=SPRINT6_ID, owner="alice")

    result = await apply(db, plan_id, alice)

    assert result.complete
    assert len({item.id for item in result.created}) == 2
    assert len(story_rows(fake_taiga, "Same subject")) == 2
    assert len(posts(fake_taiga, "/userstories")) == 1


def reference(plan_id: str, key: str) -> list[str]:
    return ["taiga-planner", f"{plan_id}:{key}"]


@pytest.mark.anyio
async def test_every_created_story_and_task_names_this_app_and_its_plan_action(
    sqlite_database: Database, fake_taiga: FakeTaiga, alice: TaigaSession
) -> None:
    plan_id = await store_plan(sqlite_database, proposal(stories=2, existing_story_tasks=1))

    result = await apply(sqlite_database, plan_id, alice)

    assert result.complete and len(result.created) == 7
    in_taiga = {
        (kind, row["id"]): row["external_reference"]
        for kind, rows in (("story", fake_taiga.stories), ("task", fake_taiga.tasks))
        for row in rows(PROJECT_ID)
    }
    for item in result.created:
        assert in_taiga[(item.kind, item.id)] == reference(plan_id, item.action_key)
    # A plan made through the API or the CLI has no thread to link back to.
    [story] = story_rows(fake_taiga, "Story 1")
    assert story["description"] == "About story 1"


@pytest.mark.anyio
async def test_a_lost_response_is_adopted_by_its_reference_not_by_an_older_look_alike(
    sqlite_database: Database, fake_taiga: FakeTaiga, alice: TaigaSession
) -> None:
    """Someone made "Story 1" by hand a moment before; our POST is saved but its answer lost:
    the story carrying our reference is adopted, the hand-made one left alone."""
    plan_id = await store_plan(sqlite_database, proposal(stories=1, tasks=1))
    by_hand = fake_taiga.add_story(PROJECT_ID, "Story 1", milestone_id=SPRINT6_ID, owner="alice")
    fake_taiga.lose_next_response(method="POST", path="/userstories")

    result = await apply(sqlite_database, plan_id, alice)

    assert result.complete
    [story] = result.created_of("story")
    [ours] = [row for row in story_rows(fake_taiga, "Story 1") if row["id"] != by_hand["id"]]
    assert (story.id, story.reconciled) == (ours["id"], True)
    assert ours["external_reference"] == reference(plan_id, "story:new-story-1")
    assert len(posts(fake_taiga, "/userstories")) == 1
    assert [t.user_story_id for t in result.created_of("task")] == [ours["id"]]


@pytest.mark.anyio
async def test_a_same_subject_look_alike_without_our_reference_is_never_adopted(
    sqlite_database: Database, fake_taiga: FakeTaiga, alice: TaigaSession
) -> None:
    """Our story POST is lost before Taiga saves it, and a person makes a story with the same
    subject in the sprint meanwhile: Retry does not take theirs for ours, it creates ours."""
    db = sqlite_database
    plan_id = await store_plan(db, proposal(stories=1, tasks=0))
    fake_taiga.fail_next(504, method="POST", path="/userstories")
    first = await apply(db, plan_id, alice)
    by_hand = fake_taiga.add_story(PROJECT_ID, "Story 1", milestone_id=SPRINT6_ID, owner="alice")

    second = await apply(db, plan_id, alice)

    assert first.failed[0].reason == NOT_CONFIRMED
    assert second.complete
    [story] = second.created_of("story")
    assert story.id != by_hand["id"] and not story.reconciled
    assert len(posts(fake_taiga, "/userstories")) == 2
    rows = {row["id"]: row["external_reference"] for row in story_rows(fake_taiga, "Story 1")}
    assert rows == {by_hand["id"]: None, story.id: reference(plan_id, "story:new-story-1")}


@pytest.mark.anyio
async def test_a_row_claimed_before_references_falls_back_then_resends_with_one(
    sqlite_database: Database, fake_taiga: FakeTaiga, alice: TaigaSession
) -> None:
    """Rows from before references were sent: the plain subject/owner/time match adopts the
    story that attempt made; one with nothing in Taiga is sent again, now with its reference."""
    db = sqlite_database
    plan_id = await store_plan(db, proposal(stories=2, tasks=0), state="partial")
    await claim_pending(
        db, plan_id, ["story:new-story-1", "story:new-story-2"], at=datetime.now(UTC)
    )
    reached = fake_taiga.add_story(PROJECT_ID, "Story 1", milestone_id=SPRINT6_ID, owner="alice")

    result = await apply(db, plan_id, alice)

    assert result.complete
    by_key = {item.action_key: item for item in result.created}
    assert (by_key["story:new-story-1"].id, by_key["story:new-story-1"].reconciled) == (
        reached["id"],
        True,
    )
    [sent] = posts(fake_taiga, "/userstories")
    assert sent.json["external_reference"] == reference(plan_id, "story:new-story-2")
    ledger = await db.run(lambda s: repo.ledger_for_plan(s, plan_id))
    assert ledger["story:new-story-2"].external_reference == tuple(
        reference(plan_id, "story:new-story-2")
    )


@pytest.mark.anyio
async def test_progress_reports_each_step(
    sqlite_database: Database, fake_taiga: FakeTaiga, alice: TaigaSession
) -> None:
    plan_id = await store_plan(sqlite_database, proposal(new_sprint="Sprint 7", stories=2, tasks=1))
    steps: list[tuple[str, str]] = []

    async def progress(step: Step) -> None:
        steps.append((step.key, step.title))

    await apply(sqlite_database, plan_id, alice, progress=progress)

    assert steps[0] == ("sprint", "Creating sprint Sprint 7")
    assert steps[1] == ("stories", "Creating stories 0/2")
    assert ("stories", "Creating stories 2/2") in steps
    assert steps[-1] == ("tasks", "Creating tasks 2/2")


@pytest.mark.anyio
async def test_a_progress_callback_that_fails_does_not_stop_the_writes(
    sqlite_database: Database, fake_taiga: FakeTaiga, alice: TaigaSession
) -> None:
    plan_id = await store_plan(sqlite_database, proposal(stories=1, tasks=1))

    async def broken(_step: Step) -> None:
        raise RuntimeError("slack is down")

    result = await apply(sqlite_database, plan_id, alice, progress=broken)

    assert result.complete


@pytest.mark.anyio
async def test_a_retry_by_another_member_adopts_the_story_the_first_lost_response_created(
    sqlite_database: Database, fake_taiga: FakeTaiga, alice: TaigaSession, carol: TaigaSession
) -> None:
    """Alice's story POST reaches Taiga but its answer is lost and she cannot check (reads fail);
    Carol presses Retry: the story Alice's request made is adopted, not created again."""
    db = sqlite_database
    plan_id = await store_plan(db, proposal(stories=1, tasks=1))
    fake_taiga.lose_next_response(method="POST", path="/userstories")
    fake_taiga.fail_next(500, method="GET", path="/userstories", times=3)
    first = await apply(db, plan_id, alice)
    assert first.state == "partial" and len(story_rows(fake_taiga, "Story 1")) == 1

    second = await apply(db, plan_id, carol)

    assert second.complete
    [row] = story_rows(fake_taiga, "Story 1")
    [story] = second.created_of("story")
    assert (story.id, story.reconciled, row["owner"]) == (row["id"], True, ALICE_ID)
    assert len(posts(fake_taiga, "/userstories")) == 1
    assert [t.user_story_id for t in second.created_of("task")] == [row["id"]]


@pytest.mark.anyio
async def test_a_story_another_member_sends_again_is_looked_up_as_theirs(
    sqlite_database: Database, fake_taiga: FakeTaiga, carol: TaigaSession
) -> None:
    """Alice's attempt never reached Taiga; Carol's Retry sends it and loses the answer: the
    lookup looks for Carol's story (the ledger now names her), so it is adopted, not resent."""
    db = sqlite_database
    plan_id = await store_plan(db, proposal(stories=1, tasks=0), state="partial")
    await claim_pending(db, plan_id, ["story:new-story-1"], at=datetime.now(UTC))
    fake_taiga.lose_next_response(method="POST", path="/userstories")

    result = await apply(db, plan_id, carol)

    assert result.complete and result.created_of("story")[0].reconciled
    assert len(story_rows(fake_taiga, "Story 1")) == 1
    assert len(posts(fake_taiga, "/userstories")) == 1


@pytest.mark.anyio
async def test_a_pending_row_recorded_before_senders_were_kept_is_matched_to_the_acting_user(
    sqlite_database: Database, fake_taiga: FakeTaiga, alice: TaigaSession
) -> None:
    db = sqlite_database
    plan_id = await store_plan(db, proposal(stories=1, tasks=0), state="partial")
    await claim_pending(db, plan_id, ["story:new-story-1"], at=datetime.now(UTC))
    await db.run(lambda s: s.execute(sa.update(WriteLedger).values(actor_taiga_id=None)))
    reached = fake_taiga.add_story(PROJECT_ID, "Story 1", milestone_id=SPRINT6_ID, owner="alice")

    result = await apply(db, plan_id, alice)

    assert result.complete and result.created_of("story")[0].id == reached["id"]
    assert posts(fake_taiga, "/userstories") == []


@pytest.mark.anyio
async def test_when_taiga_cannot_say_who_is_acting_nothing_is_sent(
    sqlite_database: Database, fake_taiga: FakeTaiga, alice: TaigaSession
) -> None:
    plan_id = await store_plan(sqlite_database, proposal(stories=1, tasks=1))
    fake_taiga.fail_next(500, method="GET", path="/users/me", times=3)

    result = await apply(sqlite_database, plan_id, alice)

    assert result.state == "partial"
    assert [(f.kind, f.skipped) for f in result.failed] == [("story", False), ("task", True)]
    assert "500" in result.failed[0].reason
    assert fake_taiga.requests_to("POST", "*") == []


# --------------------------------------------------------------------------- interrupted


class BrokenOnOneStory:
    """The acting user's session, except that one story's write dies outside Taiga (as a
    refresh hook or a database error would), after its siblings were sent."""

    def __init__(self, session: TaigaSession, subject: str) -> None:
        self._session = session
        self._subject = subject

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)

    async def create_user_story(self, project_id: int, subject: str, **kwargs: Any) -> Any:
        if subject == self._subject:
            raise RuntimeError("the link died")
        return await self._session.create_user_story(project_id, subject, **kwargs)


@pytest.mark.anyio
async def test_a_non_taiga_failure_waits_for_the_other_writes_before_giving_up(
    sqlite_database: Database, fake_taiga: FakeTaiga, alice: TaigaSession
) -> None:
    plan_id = await store_plan(sqlite_database, proposal(stories=3, tasks=0))
    fake_taiga.set_latency(0.2)  # the siblings are still on the wire when the failure happens
    broken = BrokenOnOneStory(alice, "Story 1")

    with pytest.raises(RuntimeError):
        await apply(sqlite_database, plan_id, broken)  # type: ignore[arg-type]

    ledger = await sqlite_database.run(lambda s: repo.ledger_for_plan(s, plan_id))
    created = {s["subject"] for s in fake_taiga.stories(1)} & {"Story 2", "Story 3"}
    assert created == {"Story 2", "Story 3"}
    assert ledger["story:new-story-2"].done and ledger["story:new-story-3"].done
