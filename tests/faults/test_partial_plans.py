"""Only finished plans are applied by `/agent/run`: a plan a budget stopped is refused with what
was proposed and why, unless the caller sends `"allow_partial": true`. In Slack a person sees
first that the draft is incomplete, and decides."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.peers.fake_anthropic import FakeAnthropic, message, text, tool_use
from tests.peers.fake_slack import FakeSlack
from tests.peers.fake_taiga import PROJECT_ID, FakeTaiga
from tests.peers.slack_harness import (
    Harness,
    block_text,
    has_button,
    running_harness,
    story_turn,
)
from tests.test_agent_run_api import body_for, make_settings, open_api  # noqa: F401 (fixtures)

TWO_STORIES = message(
    text("2 stories for Sprint 6."),
    *(
        tool_use("taiga_create_user_story", {"subject": s, "tasks": [{"subject": f"{s}: build"}]})
        for s in ("Export plans as CSV", "Show the export history")
    ),
)
REFUSED = (
    "Planning stopped early (the limit of 1 proposed writes was reached), so the plan may be "
    "incomplete and was not applied; nothing was written to Taiga. Send \"allow_partial\": true "
    "to apply what was proposed anyway."
)


@pytest.mark.anyio
async def test_a_plan_a_budget_stopped_is_refused_with_what_was_proposed(
    open_api: Callable[..., Any],  # noqa: F811 (the fixture imported above)
    fake_taiga: FakeTaiga,
    fake_anthropic: FakeAnthropic,
) -> None:
    api = await open_api(agent_max_write_calls=1)
    fake_anthropic.script(TWO_STORIES)

    response = await api.run(body_for(fake_taiga))

    assert response.status_code == 409
    answer = response.json()
    assert answer["detail"] == REFUSED
    assert answer["stopped"] == "write_calls"
    proposed = answer["proposal"]
    assert [s["subject"] for s in proposed["artifacts"]["user_stories"]] == ["Export plans as CSV"]
    assert proposed["artifacts"]["user_stories"][0]["id"] is None
    assert "Planning stopped early" in proposed["warnings"][-1]
    assert fake_taiga.requests_to("POST", "/userstories*") == []
    assert fake_taiga.requests_to("POST", "/tasks*") == []


@pytest.mark.anyio
async def test_allow_partial_applies_what_was_proposed_and_says_it_stopped(
    open_api: Callable[..., Any],  # noqa: F811
    fake_taiga: FakeTaiga,
    fake_anthropic: FakeAnthropic,
) -> None:
    api = await open_api(agent_max_write_calls=1)
    fake_anthropic.script(TWO_STORIES)

    answer = await api.ok(body_for(fake_taiga, allow_partial=True))

    assert [s["subject"] for s in answer["artifacts"]["user_stories"]] == ["Export plans as CSV"]
    assert answer["artifacts"]["user_stories"][0]["id"] is not None
    assert any("Planning stopped early" in w for w in answer["warnings"])
    assert [s["subject"] for s in fake_taiga.stories(PROJECT_ID)].count("Export plans as CSV") == 1


@pytest.mark.anyio
async def test_a_dry_run_of_a_stopped_plan_is_answered_not_refused(
    open_api: Callable[..., Any],  # noqa: F811
    fake_taiga: FakeTaiga,
    fake_anthropic: FakeAnthropic,
) -> None:
    api = await open_api(agent_max_write_calls=1)
    fake_anthropic.script(TWO_STORIES)

    answer = await api.ok(body_for(fake_taiga, dry_run=True))

    assert answer["dry_run"] is True
    assert any("Planning stopped early" in w for w in answer["warnings"])


@pytest.mark.anyio
async def test_a_finished_plan_is_applied_without_allow_partial(
    open_api: Callable[..., Any],  # noqa: F811
    fake_taiga: FakeTaiga,
    fake_anthropic: FakeAnthropic,
) -> None:
    api = await open_api()
    fake_anthropic.script(TWO_STORIES)

    answer = await api.ok(body_for(fake_taiga))

    assert len(answer["artifacts"]["user_stories"]) == 2
    assert answer["complete"] is True


@pytest.fixture(name="h")
async def alice_plans_with_one_write(
    tmp_path: Path, fake_slack: FakeSlack, fake_taiga: FakeTaiga, fake_anthropic: FakeAnthropic
) -> AsyncIterator[Harness]:
    async with running_harness(
        tmp_path, fake_slack, fake_taiga, fake_anthropic, agent_max_write_calls=1
    ) as harness:
        await harness.link(harness.alice, "alice")
        await harness.set_project()
        yield harness


@pytest.mark.anyio
async def test_slack_says_first_that_a_budget_stopped_the_draft(h: Harness) -> None:
    h.anthropic.script(
        story_turn(("Export plans as CSV", ["Build"]), ("Show the export history", ["Build"]))
    )

    await h.command("plan Sprint 6\nShip the CSV export and its history page.")

    proposal = await h.wait_update(lambda p: has_button(p, "plan_approve"))
    shown = block_text(proposal)
    assert (
        "*This draft is incomplete*: planning stopped early (the limit of 1 proposed writes was "
        "reached). Approve writes only what is shown here." in shown
    )
    assert shown.count("the limit of 1 proposed writes was reached") == 1  # not repeated below
    assert "Planning stopped early; this plan may be incomplete." in str(proposal["blocks"])
