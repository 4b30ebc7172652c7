"""Live progress in the thread: streamed through the fake Slack's chat streaming methods step
by step, the same plan through the status-message fallback when Slack refuses streaming, and
an apply whose Taiga writes do not wait for a Slack that is slow and answers 429."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.peers.fake_anthropic import FakeAnthropic, overloaded
from tests.peers.fake_slack import FakeSlack, SlackCall
from tests.peers.fake_taiga import PROJECT_ID, FakeTaiga
from tests.peers.slack_harness import (
    WAIT,
    Gate,
    Harness,
    block_text,
    has_button,
    running_harness,
    story_turn,
)
from tests.test_slack_flow import MINUTES, STORIES

REFUSALS = ("unknown_method", "method_not_supported_for_channel_type",
            "message_not_in_streaming_state", "invalid_arguments")


@pytest.fixture
async def h(
    tmp_path: Path, fake_slack: FakeSlack, fake_taiga: FakeTaiga, fake_anthropic: FakeAnthropic
) -> AsyncIterator[Harness]:
    async with running_harness(
        tmp_path, fake_slack, fake_taiga, fake_anthropic, slack_streaming=True
    ) as harness:
        await harness.link(harness.alice, "alice")
        await harness.set_project()
        yield harness


def task_updates(h: Harness, ts: str) -> list[tuple[str, str, str]]:
    """(id, status, title) of each task_update chunk streamed into one message, in order."""
    return [
        (c["id"], c["status"], c["title"])
        for c in h.slack.streamed_chunks(h.channel, ts)
        if c["type"] == "task_update"
    ]


def statuses_of(updates: list[tuple[str, str, str]], step: str) -> list[str]:
    statuses: list[str] = []
    for key, status, _title in updates:
        if key == step and (not statuses or statuses[-1] != status):
            statuses.append(status)
    return statuses


def first_seen(updates: list[tuple[str, str, str]]) -> list[str]:
    return list(dict.fromkeys(key for key, _, _ in updates))


async def stopped_with(h: Harness, action_id: str) -> SlackCall:
    return await h.slack.wait_for(
        "chat.stopStream", lambda c: c.ok and has_button(c.params, action_id), within=WAIT
    )


async def until(condition: Any, what: str) -> None:
    """Poll `condition` for up to 30 s."""
    for _ in range(1500):
        if condition():
            return
        await anyio.sleep(0.02)
    raise AssertionError(f"not within 30 s: {what}")


@pytest.mark.anyio
async def test_a_plan_is_streamed_step_by_step_and_its_buttons_arrive_with_stop_stream(
    h: Harness,
) -> None:
    gate = Gate(story_turn(*STORIES))
    h.anthropic.script(gate)
    h.slack.rate_limit("chat.appendStream", 1, retry_after=20)
    await h.command(f"plan Sprint 6\n{MINUTES}")

    started = await h.slack.wait_for("chat.startStream", lambda c: c.ok, within=WAIT)
    assert started.params["recipient_user_id"] == h.alice
    assert started.params["recipient_team_id"] == h.slack.team_id
    assert started.params["thread_ts"]
    ts = started.response["ts"]
    await h.slack.wait_for(
        "chat.appendStream",
        lambda c: any(ch.get("id") == "draft" for ch in c.params.get("chunks") or []),
        within=WAIT,
    )
    gate.opened.set()
    stopped = await stopped_with(h, "plan_approve")

    assert stopped.params["ts"] == ts and has_button(stopped.params, "plan_reject")
    updates = task_updates(h, ts)
    assert first_seen(updates) == ["read", "draft", "proposal"]
    for step in ("read", "draft", "proposal"):
        assert statuses_of(updates, step) == ["in_progress", "complete"], step
    assert h.slack.message(h.channel, ts)["streaming_state"] == "completed"
    plan = (await h.plans())[0]
    assert plan.state == "proposed" and plan.slack_message_ts == ts
    assert h.slack.call_count("chat.update") == 0  # nothing shown twice
    assert 20.0 in h.clock.sleeps  # the 429 on appendStream was waited out, then sent again

    await h.click("plan_approve", ts)
    result = await h.wait_update(lambda p: "applied" in str(p.get("text")) and p["ts"] == ts)

    assert not has_button(result, "plan_approve")
    applied = await h.slack.wait_for("chat.stopStream", lambda c: c.ok, count=2, within=WAIT)
    updates = task_updates(h, applied.params["ts"])
    assert first_seen(updates) == ["approved", "stories", "tasks"]  # Sprint 6 exists
    for step in ("stories", "tasks"):
        assert statuses_of(updates, step) == ["in_progress", "complete"], step
    titles = [title for key, _, title in updates if key == "stories"]
    assert titles[-1] == "Creating stories 2/2"
    assert [t for k, _, t in updates if k == "tasks"][-1] == "Creating tasks 3/3"
    await h.settle()
    assert (await h.plan(plan.id)).state == "done"


@pytest.mark.anyio
async def test_a_step_that_fails_is_streamed_as_an_error_with_the_reason(h: Harness) -> None:
    h.anthropic.script(*[overloaded() for _ in range(8)])

    await h.command(f"plan Sprint 6\n{MINUTES}")

    stopped = await h.slack.wait_for("chat.stopStream", lambda c: c.ok, within=WAIT)
    updates = task_updates(h, stopped.params["ts"])
    assert statuses_of(updates, "read") == ["in_progress", "complete"]
    assert statuses_of(updates, "draft") == ["in_progress", "error"]
    [reason] = [c["details"] for c in h.slack.streamed_chunks(h.channel, stopped.params["ts"])
                if c.get("status") == "error"]
    assert "Claude is not available" in reason
    assert "Claude is not available" in block_text(stopped.params)
    assert "overloaded_error" not in block_text(stopped.params) + reason
    await h.settle()
    assert (await h.plans())[0].state == "failed"


@pytest.mark.anyio
@pytest.mark.parametrize("refusal", REFUSALS)
async def test_when_slack_refuses_streaming_the_steps_go_to_a_status_message_in_place(
    h: Harness, refusal: str
) -> None:
    h.slack.refuse_streaming(refusal)
    gate = Gate(story_turn(*STORIES))
    h.anthropic.script(gate)
    await h.command(f"plan Sprint 6\n{MINUTES}")

    def shows_drafting(params: dict[str, Any]) -> bool:
        return "Drafting the plan with Claude" in block_text(params)

    if refusal == "message_not_in_streaming_state":  # started, then ended server-side
        started = await h.slack.wait_for("chat.startStream", lambda c: c.ok, within=WAIT)
        status_ts = started.response["ts"]
        shown = await h.wait_update(shows_drafting)
        assert shown["ts"] == status_ts
    else:
        posted = await h.slack.wait_for("chat.postMessage", count=2, within=WAIT)
        status_ts = posted.response["ts"]
        assert "Reading the project in Taiga" in block_text(posted.params)
        shown = await h.wait_update(shows_drafting)
    assert "✓ Reading the project in Taiga" in block_text(shown)  # no step lost
    assert "… Drafting the plan with Claude (step 1)" in block_text(shown)
    gate.opened.set()
    proposal_ts = await h.proposal_ts()

    assert proposal_ts == status_ts
    assert not [c for c in h.slack.calls("chat.stopStream") if c.ok]
    plan = (await h.plans())[0]
    assert plan.slack_message_ts == status_ts

    await h.click("plan_approve", proposal_ts)
    await h.wait_update(lambda p: "applied" in str(p.get("text")) and p["ts"] == status_ts)
    await h.settle()
    assert (await h.plan(plan.id)).state == "done"


@pytest.mark.anyio
async def test_an_apply_writes_to_taiga_while_slack_holds_its_updates_and_answers_429(
    tmp_path: Path, fake_slack: FakeSlack, fake_taiga: FakeTaiga, fake_anthropic: FakeAnthropic
) -> None:
    async with running_harness(tmp_path, fake_slack, fake_taiga, fake_anthropic) as h:
        await h.link(h.alice, "alice")
        await h.set_project()
        h.anthropic.script(story_turn(*STORIES))
        await h.command(f"plan Sprint 6\n{MINUTES}")
        proposal_ts = await h.proposal_ts()
        updates_before = len(h.slack.calls("chat.update"))
        h.slack.rate_limit("chat.update", 2, retry_after=30)
        h.slack.hold("chat.update")

        await h.click("plan_approve", proposal_ts)

        def all_written() -> bool:
            stories = h.taiga.requests_to("POST", "/userstories")
            return len(stories) == 2 and len(h.taiga.requests_to("POST", "/tasks")) == 3

        await until(all_written, "every story and task was sent to Taiga")
        assert h.slack.holding("chat.update") >= 1  # Slack has not answered a single update
        assert len(h.slack.calls("chat.update")) == updates_before
        h.slack.release("chat.update")

        result = await h.wait_update(
            lambda p: "applied" in str(p.get("text")) and p["ts"] == proposal_ts
        )
        assert "https://taiga.example.test/project/" in block_text(result)
        limited = [c for c in h.slack.calls("chat.update") if c.status == 429]
        assert len(limited) == 2
        assert h.clock.sleeps.count(30.0) == 2  # Retry-After honoured, in the background
        await h.settle()
        plan = (await h.plans())[0]
        assert plan.state == "done"
        subjects = {s["subject"] for s in h.taiga.stories(PROJECT_ID)}
        assert {"Export plans as CSV", "Show export history"} <= subjects


@pytest.mark.anyio
async def test_a_revision_streams_its_steps_and_ends_with_where_the_new_version_is(
    h: Harness,
) -> None:
    h.anthropic.script(story_turn(*STORIES))
    mention = h.slack.app_mention_event(
        h.channel, f"<@{h.slack.bot_user_id}> plan Sprint 6\n{MINUTES}", user=h.alice
    )
    await h.event(mention)
    first = await stopped_with(h, "plan_approve")
    await h.settle()
    h.anthropic.script(story_turn(STORIES[0]))

    await h.event(h.slack.app_mention_event(
        h.channel, f"<@{h.slack.bot_user_id}> drop the export history story", user=h.alice,
        thread_ts=mention["event"]["ts"],
    ))
    revised = await h.slack.wait_for(
        "chat.stopStream", lambda c: c.ok and "Version 2 is below." in block_text(c.params),
        within=WAIT,
    )

    assert revised.params["ts"] != first.params["ts"]
    updates = task_updates(h, revised.params["ts"])
    assert first_seen(updates) == ["read", "draft"]
    assert statuses_of(updates, "draft") == ["in_progress", "complete"]
    await h.settle()
    assert (await h.plans())[0].proposal_version == 2
