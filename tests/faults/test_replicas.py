"""Replicas: two app processes (`uvicorn bot.server:api`, separate ports) on one PostgreSQL
database, with Slack delivering the same click to both.

Every plan is applied exactly once, and the write ledger and the fake Taiga agree object for
object: for twenty Approves each sent to both replicas at once (one of them twice to the same
replica), for twenty Retries sent the same way, and for one stranded plan whose lease lapses
while two replicas' recovery sweeps race for it."""

from __future__ import annotations

import anyio
import pytest

from tests.faults.world import SETTLE_WAIT, Drafted, World
from tests.peers.app_process import AppProcess, served_apps

PLANS = 20


@pytest.fixture
def world_database_url(postgres_url: str) -> str:
    """These scenarios need a database several processes share: PostgreSQL."""
    return postgres_url


async def draft_all(world: World, app: AppProcess) -> list[Drafted]:
    return [await world.draft(app, n) for n in range(PLANS)]


async def click_on_both(world: World, apps: list[AppProcess], plans: list[Drafted],
                        action_id: str) -> dict[str, int]:
    """Each plan's click delivered to both replicas at once; the first plan's also a second
    time to the first replica (Slack's retry). Returns each click's response URL with the
    number of times it was delivered."""
    deliveries: dict[str, int] = {}
    async with anyio.create_task_group() as group:
        for index, plan in enumerate(plans):
            payload = world.click(plan, action_id)
            targets = [apps[0], apps[1], *([apps[0]] if index == 0 else [])]
            deliveries[payload["response_url"]] = len(targets)
            for app in targets:
                group.start_soon(app.post_payload, payload)
    return deliveries


@pytest.mark.anyio
async def test_twenty_approves_each_delivered_to_both_replicas_apply_each_plan_once(
    world: World,
) -> None:
    async with served_apps(world.env(), world.folder, count=2) as apps:
        plans = await draft_all(world, apps[0])

        deliveries = await click_on_both(world, apps, plans, "plan_approve")
        await world.wait_states(plans, {"done"})

        for plan in plans:
            await world.wait_shown(plan, "Sprint plan applied")
        for url, count in deliveries.items():  # every click but the winner is told who won
            await world.slack.wait_for_response_url(url, count=count - 1, within=SETTLE_WAIT)
            told = [str(p.body.get("text")) for p in world.slack.response_url_posts(url)]
            assert sum("already approved by" in t for t in told) == count - 1, told
    await world.assert_applied_exactly_once(plans)


@pytest.mark.anyio
async def test_twenty_retries_each_delivered_to_both_replicas_finish_each_plan_once(
    world: World,
) -> None:
    async with served_apps(world.env(), world.folder, count=2) as apps:
        plans = await draft_all(world, apps[0])
        world.taiga.fail_next(500, method="POST", path="/tasks", times=10_000)
        async with anyio.create_task_group() as group:
            for plan in plans:
                group.start_soon(apps[1].post_payload, world.click(plan, "plan_approve"))
        await world.wait_states(plans, {"partial"})
        for plan in plans:
            await world.wait_shown(plan, "Retry")
        world.taiga.clear_faults()
        world.taiga.clear_requests()  # from here on, no write may be sent twice

        await click_on_both(world, apps, plans, "plan_retry")
        await world.wait_states(plans, {"done"})

        for plan in plans:
            await world.wait_shown(plan, "Sprint plan applied")
    await world.assert_applied_exactly_once(plans)


@pytest.mark.anyio
async def test_two_replicas_sweeps_race_for_a_stranded_plan_and_one_finishes_it(
    world: World,
) -> None:
    """The replica applying the plan is killed with a story's request sent and its answer not
    back; two replicas start and their sweeps race once its lease lapses."""
    crashed = world.app("crashed")
    await crashed.start()
    try:
        plan = await world.draft(crashed, 0)
        held = world.taiga.hold_next_response(method="POST", path="/userstories", nth=2)
        await crashed.post_payload(world.click(plan, "plan_approve"))
        await anyio.to_thread.run_sync(held.wait_reached, SETTLE_WAIT)
        crashed.kill()
    finally:
        crashed.stop()
    held.release()
    assert (await world.plan(plan.plan_id)).state == "executing"

    async with served_apps(world.env(), world.folder, count=2):
        await world.wait_states([plan], {"done"})
        shown = await world.wait_shown(plan, "Sprint plan applied")

    assert "Retry" not in str(shown)
    await world.assert_applied_exactly_once([plan])
