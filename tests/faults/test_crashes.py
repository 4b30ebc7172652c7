"""Crashes: the app process (`uvicorn bot.server:api`) is killed with SIGKILL at each state
boundary of a plan and started again; its recovery sweep finishes what was cut short.

- mid-apply, after some writes, with one write's request sent and its answer not yet back;
- after Approve, before the apply started;
- during reconciliation (a write's answer was lost and the executor is looking for it);
→ once the dead run's lease lapses the plan is applied, nothing exists twice, nothing is
  missing, and the thread shows the result.
- while drafting → the plan ends `failed`, its thread saying so, instead of "Drafting…" forever.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import anyio
import pytest
from sqlmodel import select

from storage import repositories as repo
from storage.models import DraftingClaim
from storage.plan_states import Transition
from tests.faults.world import SETTLE_WAIT, Drafted, World
from tests.peers.app_process import AppProcess
from tests.peers.holds import Hold
from tests.peers.slack_harness import Gate, has_button, story_turn

# After the restart a draft outlives its deadline (3 s) plus one lease (5 s) after it started.
SHORT_DEADLINE = {"AGENT_DEADLINE_SECONDS": "3"}


@pytest.fixture
async def app(world: World) -> AsyncIterator[AppProcess]:
    process = world.app("app")
    await process.start()
    try:
        yield process
    finally:
        process.stop()


async def kill_when_held(app: AppProcess, hold: Hold) -> None:
    """SIGKILL the app once the held request has reached the peer; then let the peer answer
    (into a closed connection)."""
    await anyio.to_thread.run_sync(hold.wait_reached, SETTLE_WAIT)
    app.kill()
    hold.release()


async def approve_and_kill(
    world: World, app: AppProcess, plan: Drafted, hold_at: Callable[[], Hold]
) -> None:
    hold = hold_at()
    await app.post_payload(world.click(plan, "plan_approve"))
    await kill_when_held(app, hold)


async def assert_finished_after_restart(world: World, app: AppProcess, plan: Drafted) -> None:
    await app.restart()
    await world.wait_states([plan], {"done"})
    shown = await world.wait_shown(plan, "Sprint plan applied")
    assert not has_button(shown, "plan_retry") and not has_button(shown, "plan_approve")
    await world.assert_applied_exactly_once([plan])


@pytest.mark.anyio
async def test_killed_mid_apply_with_a_write_on_the_wire_the_restart_finishes_it_once(
    world: World, app: AppProcess
) -> None:
    plan = await world.draft(app, 1)

    await approve_and_kill(  # both stories and a task made; the second task made, unanswered
        world, app, plan, lambda: world.taiga.hold_next_response(path="/tasks", nth=2)
    )

    assert (await world.plan(plan.plan_id)).state == "executing"
    await assert_finished_after_restart(world, app, plan)


@pytest.mark.anyio
async def test_killed_after_approve_before_the_apply_started_the_restart_applies_it(
    world: World, app: AppProcess
) -> None:
    plan = await world.draft(app, 2)
    app.kill()
    # What the click stored just before the process died: the approval, and no apply yet (the
    # apply starts at once after it, its progress shown in the background, so no held Slack
    # call can stop the process in between).
    await world.db.run(
        lambda s: repo.transition_plan(
            s, plan_id=plan.plan_id, transition=Transition.APPROVE, decided_by=world.alice
        )
    )

    assert (await world.plan(plan.plan_id)).state == "approved"
    assert world.taiga.requests_to("POST", "*") == []
    await assert_finished_after_restart(world, app, plan)


@pytest.mark.anyio
async def test_killed_while_reconciling_a_lost_answer_the_restart_adopts_it_once(
    world: World, app: AppProcess
) -> None:
    plan = await world.draft(app, 3)
    world.taiga.lose_next_response(method="POST", path="/userstories")

    await approve_and_kill(  # the lookup of the story whose answer was lost
        world, app, plan, lambda: world.taiga.hold_next_response(method="GET", path="/userstories")
    )

    assert (await world.plan(plan.plan_id)).state == "executing"
    await assert_finished_after_restart(world, app, plan)


@pytest.mark.anyio
async def test_killed_while_drafting_the_plan_fails_with_a_sentence_in_its_thread(
    world: World, app: AppProcess
) -> None:
    gate = Gate(story_turn(("P4 story 1", ["P4 task 1.1"])))
    world.anthropic.script(gate)
    form = world.slack.slash_command_form(
        "/taiga", "plan Sprint 6\nWe agreed on the work of P4.", user=world.alice,
        channel=world.channel,
    )  # fmt: skip
    await app.post_command(form)
    assert await anyio.to_thread.run_sync(gate.reached.wait, SETTLE_WAIT)
    app.kill()
    gate.opened.set()
    [plan] = await world.plans()
    assert plan.state == "drafting"
    drafted = Drafted(plan.id, str(plan.slack_message_ts), "P4")

    app.env.update(SHORT_DEADLINE)
    await app.restart()

    await world.wait_states([drafted], {"failed"})
    shown = await world.wait_shown(drafted, "restarted while drafting")
    assert not has_button(shown, "plan_approve")
    assert world.taiga.requests_to("POST", "*") == []
    # "ask again" works at once: the dead draft no longer holds the person's place.
    assert await world.db.run(lambda s: s.exec(select(DraftingClaim)).all()) == []

