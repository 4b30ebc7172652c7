"""The planning loop with the real Taiga client against the fake Taiga server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from anthropic import AsyncAnthropic

from agent.budgets import Budgets
from agent.loop import propose
from agent.proposal import Proposal
from taiga.client import TaigaClient
from taiga.models import TaigaTokens
from tests.peers.clock import FakeClock
from tests.peers.fake_anthropic import (
    FakeAnthropic,
    message,
    text,
    tool_results,
    tool_use,
)
from tests.peers.fake_taiga import FakeTaiga

MINUTES = "Decided: coaches export plans as PDF (button + renderer). Reminders for athletes."


@pytest.fixture
async def taiga_client(fake_taiga: FakeTaiga) -> AsyncIterator[TaigaClient]:
    client = TaigaClient(fake_taiga.api_url, clock=FakeClock())
    try:
        yield client
    finally:
        await client.aclose()


async def _propose_as(
    username: str, fake_taiga: FakeTaiga, fake_anthropic: FakeAnthropic, client: TaigaClient
) -> tuple[Proposal, dict[str, str]]:
    raw_tokens = fake_taiga.login_tokens(username)
    session = client.session(TaigaTokens(**raw_tokens))
    anthropic = AsyncAnthropic(base_url=fake_anthropic.base_url, api_key="test", max_retries=0)
    try:
        proposal = await propose(
            anthropic=anthropic,
            model="claude-test",
            taiga=session,
            project_ref="alice-peer-client-test",
            sprint_name="sprint 6",
            minutes=MINUTES,
            budgets=Budgets(),
            clock=FakeClock(),
            progress=None,
        )
    finally:
        await anthropic.close()
    return proposal, raw_tokens


@pytest.mark.anyio
async def test_bob_the_viewer_gets_our_warning_and_the_model_is_not_called(
    fake_taiga: FakeTaiga, fake_anthropic: FakeAnthropic, taiga_client: TaigaClient
) -> None:
    proposal, _ = await _propose_as("bob", fake_taiga, fake_anthropic, taiga_client)
    assert proposal.warnings == [
        "You may not add user stories in project Peer Client Test, so nothing can be created."
    ]
    assert fake_anthropic.requests == []
    assert proposal.actions() == []


@pytest.mark.anyio
async def test_alice_plan_reads_for_real_writes_nothing_and_leaks_no_token(
    fake_taiga: FakeTaiga, fake_anthropic: FakeAnthropic, taiga_client: TaigaClient
) -> None:
    fake_anthropic.script(
        message(tool_use("taiga_list_user_stories", {"backlog": True})),
        message(
            text("1 story with 2 tasks for Sprint 6."),
            tool_use(
                "taiga_create_user_story",
                {
                    "subject": "As a coach, I can export a plan as PDF",
                    "tasks": [{"subject": "Add export button"}, {"subject": "Render PDF"}],
                },
            ),
        ),
    )
    stories_before = len(fake_taiga.stories(1))
    proposal, tokens = await _propose_as("alice", fake_taiga, fake_anthropic, taiga_client)

    assert proposal.milestone is not None and proposal.milestone.existing_id == 2
    assert [a.key for a in proposal.actions()] == [
        "story:new-story-1",
        "task:new-story-1/task-1",
        "task:new-story-1/task-2",
    ]
    backlog = tool_results(fake_anthropic.requests[1].body)[0]["content"]
    assert "Bulk story one" in backlog
    assert "Export report" in fake_anthropic.requests[0].raw  # already in Sprint 6: prefetched
    # Nothing was written to Taiga: only reads went out.
    assert {r.method for r in fake_taiga.requests} == {"GET"}
    assert len(fake_taiga.stories(1)) == stories_before
    # No Taiga token ever reaches the model.
    for request in fake_anthropic.requests:
        for secret in tokens.values():
            assert secret not in request.raw
            assert all(secret not in value for value in request.headers.values())
