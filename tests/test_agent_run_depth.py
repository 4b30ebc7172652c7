"""How many Taiga round trips deep one `POST /agent/run` is: the fake Taiga's request log, with
latency injected so requests sent together overlap, shows project (and who is asking) first,
then the other reads at once, then the stories, then the tasks: 4 rounds."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from agent.runtime import build_runtime
from agent.settings import Settings
from bot.server import create_api
from storage.db import Database
from tests.peers.clock import FakeClock
from tests.peers.fake_anthropic import FakeAnthropic, message, text, tool_use
from tests.peers.fake_taiga import PROJECT_ID
from tests.peers.timed_taiga import TimedTaiga, critical_path

KEY = "depth-test-key"
# Long enough that requests sent together overlap on the server even on a busy machine.
LATENCY = 0.4


@pytest.fixture
def timed_taiga() -> Iterator[TimedTaiga]:
    fake = TimedTaiga()
    fake.seed_recorded()
    with fake.running():
        fake.set_latency(LATENCY)
        yield fake


def three_by_three() -> dict[str, object]:
    stories = [
        tool_use(
            "taiga_create_user_story",
            {
                "subject": f"Depth story {s}",
                "description": "From the sync.",
                "tasks": [{"subject": f"Depth story {s} task {t}"} for t in (1, 2, 3)],
            },
        )
        for s in (1, 2, 3)
    ]
    return message(text("3 stories with 3 tasks each."), *stories)


@pytest.mark.anyio
async def test_agent_run_reads_in_two_rounds_and_writes_in_two_more(
    timed_taiga: TimedTaiga, fake_anthropic: FakeAnthropic, sqlite_database: Database
) -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        taiga_api_url=timed_taiga.api_url,
        anthropic_api_key="test",
        anthropic_base_url=fake_anthropic.base_url,
        database_url=sqlite_database.url.render_as_string(hide_password=False),
        agent_api_keys=[KEY],
        slack_app_token="",
    )
    runtime = build_runtime(settings, clock=FakeClock())
    fake_anthropic.script(three_by_three())
    body = {
        "project_id": PROJECT_ID,
        "prompt": "Planning sync. Create user stories and tasks for Sprint 6.",
        "auth_token": timed_taiga.login_tokens("alice")["auth_token"],
    }
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_api(runtime=runtime)),
            base_url="http://api",
            timeout=60.0,
        ) as http:
            response = await http.post(
                "/agent/run", json=body, headers={"Authorization": f"Bearer {KEY}"}
            )
    finally:
        await runtime.aclose()

    assert response.status_code == 200, response.text
    assert len(response.json()["artifacts"]["user_stories"]) == 3
    spans = timed_taiga.spans()
    reads = [s for s in spans if s.method == "GET"]
    assert {s.path for s in reads} >= {"/users/me", f"/projects/{PROJECT_ID}"}
    assert critical_path(reads) <= 2
    assert critical_path(spans) <= 4
