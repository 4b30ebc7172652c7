"""The recovery sweep and clicks on finished plans: a restart mid-apply is finished by the bot,
forgotten proposals expire on their own, and a result Slack never showed is shown on a click.

A restart is simulated as it leaves the database: the plan moved to `approved` / `executing` /
`partial` through storage, with a pending ledger row for a write whose response was lost."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from sqlmodel import Session

from agent.executor import INTERRUPTED_BY_SHUTDOWN, apply_plan
from agent.proposal import Proposal
from bot.server import create_api
from bot.services.decisions import show_retry
from bot.services.recovery import RecoverySweep, SweepPolicy, SweepReport
from storage import repositories as repo
from storage.crypto import generate_key
from storage.db import Database
from storage.plan_states import Transition
from tests.peers.fake_slack import FakeSlack
from tests.peers.fake_taiga import PROJECT_ID
from tests.peers.slack_harness import (
    WAIT,
    Harness,
    block_text,
    has_button,
    story_turn,
)
from tests.peers.slack_setups import alice_plans_here

MINUTES = "We agreed to ship the CSV export.\nAlice: add the download button."
STORIES = (
    ("Export plans as CSV", ["Write the CSV writer", "Add the download button"]),
    ("Show export history", ["List past exports"]),
)
SUBJECTS = ["Export plans as CSV", "Show export history"]
TASKS = ["Write the CSV writer", "Add the download button", "List past exports"]
SPRINT6_ID = 2  # the fake's seeded "Sprint 6", which the proposal uses
# How long after the crash the sweep looks: past the grace of an approved plan and the lease of
# an executing one (both PLAN_LEASE_SECONDS, 30 s).
AFTER_CRASH = {"approved": timedelta(minutes=1), "executing": timedelta(minutes=1)}
LEASE = timedelta(seconds=30)
# How a proposed plan got to the state a crash left it in.
CRASH_PATHS = {
    "approved": [Transition.APPROVE],
    "executing": [Transition.APPROVE, Transition.START_APPLY],
}


h = alice_plans_here


async def propose(h: Harness) -> tuple[str, str]:
    """`/taiga plan` by Alice; the plan id and the ts of its proposal message."""
    h.anthropic.script(story_turn(*STORIES))
    await h.command(f"plan Sprint 6\n{MINUTES}")
    ts = await h.proposal_ts()
    await h.settle()
    return (await h.plans())[0].id, ts


async def crash(h: Harness, plan_id: str, state: str) -> None:
    """Leave the plan as a process that died after Alice's Approve would: in `state`, and (for
    `executing`) the first story sent with its response lost: a pending ledger row, and the
    story in Taiga."""

    def arrive(session: Session) -> None:
        for transition in CRASH_PATHS[state]:
            repo.transition_plan(
                session, plan_id=plan_id, transition=transition, decided_by=h.alice,
                holder="the-run-that-died", lease_until=h.wall() + LEASE,
            )

    await h.db.run(arrive)
    if state != "executing":
        return
    key = (await first_story_key(h, plan_id))
    actor = h.taiga.user("alice").id
    await h.db.run(
        lambda s: repo.claim_actions(
            s, plan_id=plan_id, action_keys=[key], now=datetime.now(UTC), actor=actor
        )
    )
    h.taiga.add_story(PROJECT_ID, SUBJECTS[0], milestone_id=SPRINT6_ID, owner="alice")


async def first_story_key(h: Harness, plan_id: str) -> str:
    plan = await h.plan(plan_id)
    actions = Proposal.model_validate(plan.proposal).actions()
    return next(a.key for a in actions if a.kind == "story" and a.story.subject == SUBJECTS[0])


def after_crash(h: Harness, age: timedelta) -> None:
    h.wall.offset = age


async def sweep(h: Harness) -> SweepReport:
    with anyio.fail_after(WAIT):
        return await h.bot.recovery.run_round()


def assert_each_item_once(h: Harness) -> None:
    stories = [s["subject"] for s in h.taiga.stories(PROJECT_ID)]
    tasks = [t["subject"] for t in h.taiga.tasks(PROJECT_ID)]
    assert [stories.count(s) for s in SUBJECTS] == [1, 1]
    assert [tasks.count(t) for t in TASKS] == [1, 1, 1]


def updates_of(h: Harness, ts: str) -> list[dict[str, Any]]:
    return [c.params for c in h.slack.calls("chat.update") if c.ok and c.params["ts"] == ts]


# --------------------------------------------------------------------------- resume


@pytest.mark.anyio
@pytest.mark.parametrize("state", ["approved", "executing"])
async def test_a_plan_stranded_by_a_restart_is_finished_by_one_sweep_round(
    h: Harness, state: str
) -> None:
    plan_id, ts = await propose(h)
    await crash(h, plan_id, state)

    assert await sweep(h) == SweepReport()  # too recent: its run may still be alive
    after_crash(h, AFTER_CRASH[state])
    report = await sweep(h)

    assert report.resumed == [plan_id]
    result = await h.wait_update(lambda p: p["ts"] == ts and "applied" in str(p.get("text")))
    shown = block_text(result)
    assert "Sprint plan applied" in shown and "https://taiga.example.test/project/" in shown
    assert not has_button(result, "plan_approve") and not has_button(result, "plan_retry")
    assert_each_item_once(h)
    assert h.taiga.requests_to("GET", "/users/me") == []  # the link says who Alice is in Taiga
    assert (await h.plan(plan_id)).state == "done"
    assert await sweep(h) == SweepReport()  # nothing left to do


class Replica(RecoverySweep):
    """A sweep on another replica: its round picks its plans when every replica has picked."""

    def __init__(self, h: Harness, barrier: asyncio.Barrier) -> None:
        super().__init__(h.bot.services)
        self.barrier = barrier

    async def _due(self) -> list[Any]:
        plans = await super()._due()
        await self.barrier.wait()
        return plans


@pytest.mark.anyio
async def test_two_sweeps_racing_over_one_plan_write_it_once(h: Harness) -> None:
    plan_id, ts = await propose(h)
    await crash(h, plan_id, "approved")
    after_crash(h, AFTER_CRASH["approved"])
    barrier = asyncio.Barrier(2)
    replicas = [Replica(h, barrier), Replica(h, barrier)]

    with anyio.fail_after(WAIT):
        reports = await asyncio.gather(*(r.run_round() for r in replicas))
    await h.settle()

    # Both took the plan up; the executor's compare-and-set let one of them write.
    assert [r.resumed + r.busy for r in reports] == [[plan_id], [plan_id]]
    assert len(h.taiga.requests_to("POST", "/userstories")) == 2
    assert len(h.taiga.requests_to("POST", "/tasks")) == 3
    assert_each_item_once(h)
    assert "Sprint plan applied" in block_text(updates_of(h, ts)[-1])
    assert (await h.plan(plan_id)).state == "done"


@pytest.mark.anyio
async def test_a_plan_a_shutdown_cancelled_mid_apply_is_finished_by_the_sweep(
    h: Harness,
) -> None:
    plan_id, ts = await propose(h)
    await h.db.run(
        lambda s: repo.transition_plan(
            s, plan_id=plan_id, transition=Transition.APPROVE, decided_by=h.alice,
        )
    )
    await cancelled_mid_apply(h, plan_id)
    after_crash(h, AFTER_CRASH["approved"])

    report = await sweep(h)

    assert report.resumed == [plan_id]
    await h.wait_update(lambda p: p["ts"] == ts and "Sprint plan applied" in block_text(p))
    assert_each_item_once(h)


async def cancelled_mid_apply(h: Harness, plan_id: str) -> None:
    """Run the executor as an Approve does and cancel it after its first write, as a shutdown
    (`Services.cancel_all`) does; it stores the plan as interrupted."""
    first_write = asyncio.Event()

    async def progress(_line: str) -> None:
        first_write.set()
        await asyncio.Event().wait()  # hold the run here until it is cancelled

    link = await h.db.run(
        lambda s: repo.get_link(
            s, cipher=h.bot.services.cipher, team_id=h.slack.team_id, user_id=h.alice
        )
    )
    assert link is not None
    run = asyncio.create_task(
        apply_plan(
            db=h.db, plan_id=plan_id, taiga=h.bot.services.refresher.session(link),
            web_url=h.settings.taiga_web_url, progress=progress,
        )
    )
    with anyio.fail_after(WAIT):
        await first_write.wait()
    run.cancel()
    await asyncio.gather(run, return_exceptions=True)
    plan = await h.plan(plan_id)
    assert (plan.state, plan.error) == ("partial", INTERRUPTED_BY_SHUTDOWN)


@pytest.mark.anyio
@pytest.mark.parametrize("link", ["removed", "dead"])
async def test_an_approver_without_a_working_link_is_named_as_the_one_to_retry(
    h: Harness, link: str
) -> None:
    plan_id, ts = await propose(h)
    await crash(h, plan_id, "approved")
    if link == "removed":
        await h.db.run(lambda s: repo.delete_link(s, team_id=h.slack.team_id, user_id=h.alice))
    else:
        h.taiga.expire_access_tokens("alice")
        h.taiga.expire_refresh_tokens("alice")
    after_crash(h, AFTER_CRASH["approved"])

    report = await sweep(h)

    assert report.parked == [plan_id]
    shown = await h.wait_update(lambda p: p["ts"] == ts and has_button(p, "plan_retry"))
    text = block_text(shown)
    assert "restarted" in text and "@alice must link Taiga again" in text and "Retry" in text
    assert not set(SUBJECTS) & {s["subject"] for s in h.taiga.stories(PROJECT_ID)}  # refused
    assert (await h.plan(plan_id)).state == "partial"
    assert await sweep(h) == SweepReport()  # left for Alice's Retry, not tried every round

    if link == "dead":
        return
    await h.link(h.alice, "alice")
    await h.click("plan_retry", ts)
    await h.wait_update(lambda p: p["ts"] == ts and "Sprint plan applied" in block_text(p))
    await h.settle()
    assert_each_item_once(h)


# --------------------------------------------------------------------------- expiry


class StepClock:
    """The sweep's clock in a test: each wait is recorded, then lasts until the test ticks."""

    def __init__(self) -> None:
        self.sleeps: list[float] = []
        self.waiting = asyncio.Event()
        self._tick = asyncio.Event()

    def now(self) -> float:
        return 0.0

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.waiting.set()
        await self._tick.wait()
        self._tick.clear()

    async def next_wait(self) -> None:
        with anyio.fail_after(WAIT):
            await self.waiting.wait()
        self.waiting.clear()

    def tick(self) -> None:
        self._tick.set()


@pytest.mark.anyio
async def test_the_started_sweep_expires_a_forgotten_proposal_without_a_click(
    h: Harness,
) -> None:
    plan_id, ts = await propose(h)
    clock = StepClock()
    h.bot.recovery = RecoverySweep(h.bot.services, clock=clock)

    h.bot.start()  # as bot.serve does
    try:
        await clock.next_wait()  # the first round ran at once: nothing was due
        assert (await h.plan(plan_id)).state == "proposed"
        after_crash(h, timedelta(hours=h.settings.plan_expiry_hours + 1))
        clock.tick()
        expired = await h.wait_update(lambda p: p["ts"] == ts and "expired" in block_text(p))
        await clock.next_wait()
    finally:
        await h.bot.aclose()

    assert clock.sleeps == [10.0, 10.0]
    assert not has_button(expired, "plan_approve")
    assert (await h.plan(plan_id)).state == "expired"
    assert h.slack.response_url_posts() == []  # nobody clicked
    assert len([p for p in updates_of(h, ts) if "expired" in block_text(p)]) == 1


@pytest.mark.anyio
async def test_the_started_sweep_wakes_when_a_dead_runs_lease_ends_and_finishes_the_plan(
    h: Harness,
) -> None:
    plan_id, ts = await propose(h)
    await crash(h, plan_id, "executing")  # its lease ends 30 s from now
    clock = StepClock()
    h.bot.recovery = RecoverySweep(h.bot.services, SweepPolicy(interval=60.0), clock=clock)

    h.bot.start()
    try:
        await clock.next_wait()  # the first round: the lease is live, so nothing is taken over
        assert (await h.plan(plan_id)).state == "executing"
        after_crash(h, LEASE + timedelta(seconds=1))
        clock.tick()
        await h.wait_update(lambda p: p["ts"] == ts and "Sprint plan applied" in block_text(p))
        await clock.next_wait()
    finally:
        await h.bot.aclose()

    assert 20.0 < clock.sleeps[0] <= LEASE.total_seconds()  # woke at the lease's end, not later
    assert_each_item_once(h)


# --------------------------------------------------------------------------- clicks


@pytest.mark.anyio
async def test_a_click_on_a_done_plan_shows_the_result_slack_never_showed(h: Harness) -> None:
    plan_id, ts = await propose(h)
    await crash(h, plan_id, "approved")
    await applied_without_showing(h, plan_id)

    _, response_url = await h.click("plan_approve", ts)

    result = await h.wait_update(lambda p: p["ts"] == ts and "Sprint plan applied" in block_text(p))
    assert "https://taiga.example.test/project/" in block_text(result)
    assert not has_button(result, "plan_approve")
    told = await h.slack.wait_for_response_url(response_url, within=WAIT)
    assert "already approved" in json.dumps(told.body)
    await h.settle()
    assert_each_item_once(h)


async def applied_without_showing(h: Harness, plan_id: str) -> None:
    """The executor finished and stored the result; the process died before Slack showed it."""
    link = await h.db.run(
        lambda s: repo.get_link(
            s, cipher=h.bot.services.cipher, team_id=h.slack.team_id, user_id=h.alice
        )
    )
    assert link is not None
    with anyio.fail_after(WAIT):
        result = await apply_plan(
            db=h.db, plan_id=plan_id, taiga=h.bot.services.refresher.session(link),
            web_url=h.settings.taiga_web_url,
        )
    assert result.state == "done"


@pytest.mark.anyio
async def test_retry_on_a_plan_whose_run_died_lets_the_executor_take_it_over(
    h: Harness,
) -> None:
    plan_id, ts = await propose(h)
    await crash(h, plan_id, "executing")
    # The message still shows the Retry of an earlier failed attempt (its update was lost).
    await show_retry(h.bot.services, await h.plan(plan_id), "Taiga is not available.")

    _, response_url = await h.click("plan_retry", ts)  # its run may still be alive
    told = await h.slack.wait_for_response_url(response_url, within=WAIT)
    assert "being applied right now" in told.body["text"]
    await h.settle()
    assert h.taiga.requests_to("POST", "/userstories") == []

    after_crash(h, AFTER_CRASH["executing"])
    await h.click("plan_retry", ts)

    await h.wait_update(lambda p: p["ts"] == ts and "Sprint plan applied" in block_text(p))
    await h.settle()
    assert_each_item_once(h)


# --------------------------------------------------------------------------- the served app


@pytest.mark.anyio
async def test_uvicorn_serving_the_api_in_http_mode_runs_the_sweep(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fake_slack: FakeSlack,
    sqlite_database: Database,
) -> None:
    """`uvicorn bot.server:api` (the Procfile) starts the sweep with the app's lifespan."""
    channel = fake_slack.add_channel("planning")
    ts = fake_slack.add_message(channel, "Proposed sprint plan", user=fake_slack.bot_user_id)
    await sqlite_database.run(
        lambda s: repo.create_plan(
            s, slack_team_id=fake_slack.team_id, slack_channel_id=channel, slack_thread_ts=ts,
            slack_message_ts=ts, requester_slack_id="U1", project_id=1, project_slug="p",
            target_sprint="Sprint 6", minutes_digest="0" * 64, state="proposed",
            expires_at=datetime.now(UTC) - timedelta(hours=1),
        )
    )
    monkeypatch.chdir(tmp_path)  # no stray .env
    for name, value in {
        "DATABASE_URL": sqlite_database.url.render_as_string(hide_password=False),
        "SLACK_BOT_TOKEN": fake_slack.bot_token, "SLACK_SIGNING_SECRET": "secret",
        "SLACK_API_URL": fake_slack.api_url, "SLACK_APP_TOKEN": "",
        "TOKEN_ENCRYPTION_KEYS": generate_key(), "ANTHROPIC_API_KEY": "test",
    }.items():
        monkeypatch.setenv(name, value)
    app = create_api()

    async with app.router.lifespan_context(app):
        update = await fake_slack.wait_for("chat.update", within=WAIT)

    assert update.params["ts"] == ts
    assert "expired" in block_text(update.params)
