"""The database unreachable mid-apply (PostgreSQL behind a loopback TCP proxy that the test
cuts, with a write's answer arriving while it is cut), for the app as its own process:

- for a moment (shorter than the lease): the apply waits for it and carries on → `done`;
- for longer than the lease: the run stops writing (it cannot prove it still holds the plan);
  once the database is back the recovery sweep takes the plan over and finishes it.
Either way no ledger row is lost: the write answered during the outage is recognised in Taiga
by its reference, nothing exists twice and nothing is missing."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest
from sqlalchemy.engine import make_url

from tests.faults.world import SETTLE_WAIT, World
from tests.peers.app_process import TEST_LEASE, AppProcess
from tests.peers.slack_harness import has_button
from tests.peers.tcp_proxy import TcpProxy

LEASE_SECONDS = float(TEST_LEASE["PLAN_LEASE_SECONDS"])


@pytest.fixture
def world_database_url(postgres_url: str) -> str:
    """These scenarios need a database several processes share: PostgreSQL."""
    return postgres_url


@pytest.fixture
def proxy(postgres_url: str) -> AsyncIterator[TcpProxy]:
    url = make_url(postgres_url)
    with TcpProxy(url.host or "127.0.0.1", url.port or 5432).running() as running:
        yield running


@pytest.fixture
async def app(world: World, proxy: TcpProxy) -> AsyncIterator[AppProcess]:
    through_proxy = make_url(world.database_url).set(host="127.0.0.1", port=proxy.port)
    env = world.env(DATABASE_URL=through_proxy.render_as_string(hide_password=False))
    process = AppProcess(env, world.folder, "app")
    await process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.mark.anyio
@pytest.mark.parametrize(
    "outage", [LEASE_SECONDS / 3, LEASE_SECONDS + 2], ids=["a-moment", "longer-than-the-lease"]
)
async def test_the_database_unreachable_mid_apply_loses_no_ledger_row(
    world: World, app: AppProcess, proxy: TcpProxy, outage: float
) -> None:
    plan = await world.draft(app, 5)
    held = world.taiga.hold_next_response(path="/tasks", nth=2)
    await app.post_payload(world.click(plan, "plan_approve"))
    await anyio.to_thread.run_sync(held.wait_reached, SETTLE_WAIT)
    proxy.cut()
    held.release()  # Taiga has made the task and answers while the database is gone
    await anyio.sleep(outage)  # the outage itself, not a wait for a result
    proxy.restore()

    if outage > LEASE_SECONDS:  # the run stopped writing, and the thread says why meanwhile
        await world.wait_shown(plan, "lost its database while applying this plan")
    await world.wait_states([plan], {"done"})
    shown = await world.wait_shown(plan, "Sprint plan applied")
    assert not has_button(shown, "plan_retry")
    await world.assert_applied_exactly_once([plan])
