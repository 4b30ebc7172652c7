"""The lease an apply holds on its plan: a live run is never taken for dead however slow Taiga
is, and a run that lost its plan to another stops writing and cannot overwrite that run's
result. The apply runs in-process against the fake Taiga; a "replica" is a second
`apply_plan` on the same database."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import anyio
import pytest

from agent.executor import ExecutionResult
from agent.executor.lease import LeaseTiming
from storage import repositories as repo
from storage.db import Database
from storage.models import utcnow
from taiga.client import TaigaSession
from tests.peers.fake_taiga import PROJECT_ID, FakeTaiga
from tests.peers.holds import Hold
from tests.peers.slack_harness import WAIT
from tests.test_executor import apply, plan_state, posts, proposal, store_plan

SHORT = LeaseTiming(duration=timedelta(seconds=1), interval=timedelta(milliseconds=200))


async def held_apply(
    db: Database, plan_id: str, session: TaigaSession, hold: Hold
) -> asyncio.Task[ExecutionResult]:
    """Start an apply on a short lease and wait until its held write reached Taiga."""
    run = asyncio.create_task(apply(db, plan_id, session, lease=SHORT))
    await anyio.to_thread.run_sync(hold.wait_reached, WAIT)
    return run


async def stored_result(db: Database, plan_id: str) -> object:
    return await db.run(lambda s: repo.get_plan(s, plan_id).result)  # type: ignore[union-attr]


def assert_each_once(fake: FakeTaiga, stories: int, tasks: int) -> None:
    story_subjects = [s["subject"] for s in fake.stories(PROJECT_ID) if "Story" in s["subject"]]
    task_posts = posts(fake, "/tasks")
    assert sorted(story_subjects) == [f"Story {n}" for n in range(1, stories + 1)]
    assert len(posts(fake, "/userstories")) == stories and len(task_posts) == tasks


@pytest.mark.anyio
async def test_a_live_apply_slower_than_its_lease_is_never_taken_over(
    sqlite_database: Database, fake_taiga: FakeTaiga, alice: TaigaSession
) -> None:
    db = sqlite_database
    plan_id = await store_plan(db, proposal(stories=2, tasks=1))
    hold = fake_taiga.hold_next_response(path="/tasks")  # Taiga takes its time over a task
    first = await held_apply(db, plan_id, alice, hold)
    await anyio.sleep(3 * SHORT.duration.total_seconds())  # three leases' worth of slowness

    second = await apply(db, plan_id, alice, lease=SHORT)  # another replica, or a Retry
    swept = await db.run(
        lambda s: repo.plans_to_sweep(
            s, approved_before=utcnow(), lapsed_by=utcnow(), expired_by=utcnow()
        )
    )
    hold.release()
    with anyio.fail_after(WAIT):
        result = await first

    assert second.state == "executing" and swept == []
    assert result.state == "done" and await plan_state(db, plan_id) == "done"
    assert_each_once(fake_taiga, stories=2, tasks=2)


@pytest.mark.anyio
async def test_a_run_whose_plan_was_taken_over_stops_writing_and_keeps_the_new_result(
    sqlite_database: Database, fake_taiga: FakeTaiga, alice: TaigaSession
) -> None:
    """The first run froze (a stopped VM, a paused process) for longer than its lease with a
    story on the wire; a second run took the plan over and finished it. When the first wakes,
    it sends nothing more and its result does not replace the second's."""
    db = sqlite_database
    plan_id = await store_plan(db, proposal(stories=2, tasks=2))
    hold = fake_taiga.hold_next_response(path="/userstories")
    first = await held_apply(db, plan_id, alice, hold)

    later = utcnow() + timedelta(minutes=5)  # the first run's lease has long lapsed by then
    second = await apply(db, plan_id, alice, lease=SHORT, now=lambda: later)
    stored = await stored_result(db, plan_id)
    sent_before_waking = len(fake_taiga.requests_to("POST", "*"))
    hold.release()
    with anyio.fail_after(WAIT):
        woke = await first

    assert second.state == "done" and second.complete
    assert woke.state == "done" and woke.created == second.created  # the second run's result
    assert await stored_result(db, plan_id) == stored
    assert len(fake_taiga.requests_to("POST", "*")) == sent_before_waking
    assert_each_once(fake_taiga, stories=2, tasks=4)
