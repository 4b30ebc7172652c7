"""A thread's minutes as people wrote them: who said what, a note-taker app's summary, and a
transcript uploaded to the thread."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.peers.fake_anthropic import FakeAnthropic
from tests.peers.fake_slack import FakeSlack
from tests.peers.fake_taiga import FakeTaiga
from tests.peers.slack_harness import (
    WAIT,
    Harness,
    has_button,
    model_prompt,
    running_harness,
    story_turn,
)
from tests.peers.slack_setups import alice_plans_here

TURN = story_turn(("Export plans as CSV", ["Write the CSV writer"]))


h = alice_plans_here



async def plan_here(h: Harness, parent: str) -> None:
    await h.event(h.slack.app_mention_event(
        h.channel, f"<@{h.slack.bot_user_id}> plan Sprint 6", user=h.alice, thread_ts=parent
    ))


@pytest.mark.anyio
async def test_the_minutes_keep_who_said_what(h: Harness) -> None:
    parent = h.slack.add_message(h.channel, "Sprint 6 planning", user=h.alice)
    h.slack.add_message(h.channel, "I'll build the download button", user=h.bob, thread_ts=parent)
    h.anthropic.script(TURN)

    await plan_here(h, parent)
    await h.wait_update(lambda p: has_button(p, "plan_approve"))

    prompt = model_prompt(h)
    assert "Alice Doe (@alice): Sprint 6 planning" in prompt
    assert "Bob Roe (@bob): I'll build the download button" in prompt
    first = h.anthropic.requests[0].body["messages"][0]["content"]
    assert '"project_tags": [\n  "auth",\n  "p1"\n ]' in first  # the project's existing tags


@pytest.mark.anyio
async def test_a_note_taker_apps_summary_is_part_of_the_minutes(h: Harness) -> None:
    parent = h.slack.add_message(h.channel, "Planning call", user=h.alice)
    h.slack.add_app_message(
        h.channel, "Meeting summary: Bob builds the CSV export.", app_name="Notetaker",
        thread_ts=parent,
    )
    await h.bot.services.slack.chat_postMessage(
        channel=h.channel, thread_ts=parent, text="our own earlier reply"
    )
    h.anthropic.script(TURN)

    await plan_here(h, parent)
    await h.wait_update(lambda p: has_button(p, "plan_approve"))

    prompt = model_prompt(h)
    assert "Notetaker (app): Meeting summary: Bob builds the CSV export." in prompt
    assert "our own earlier reply" not in prompt


@pytest.mark.anyio
async def test_an_uploaded_text_transcript_is_read_as_minutes(h: Harness) -> None:
    parent = h.slack.add_message(h.channel, "Transcript of today's call", user=h.alice)
    h.slack.add_file_message(
        h.channel, "call.txt", b"Bob: I'll take the CSV export.\nAlice: ok <3",
        user=h.alice, thread_ts=parent,
    )
    h.slack.add_file_message(
        h.channel, "whiteboard.png", b"\x89PNG", user=h.alice, thread_ts=parent,
        filetype="png", mimetype="image/png",
    )
    h.anthropic.script(TURN)

    await plan_here(h, parent)
    await h.wait_update(lambda p: has_button(p, "plan_approve"))

    prompt = model_prompt(h)
    assert "[Transcript call.txt, uploaded by Alice Doe (@alice)]" in prompt
    assert "Bob: I'll take the CSV export.\\nAlice: ok <3" in prompt
    assert len(h.slack.file_downloads) == 1  # not the picture
    assert h.slack.file_downloads[0][1] == h.slack.bot_token


@pytest.mark.anyio
async def test_a_transcript_over_the_limit_is_refused(
    tmp_path: Path, fake_slack: FakeSlack, fake_taiga: FakeTaiga, fake_anthropic: FakeAnthropic
) -> None:
    async with running_harness(
        tmp_path, fake_slack, fake_taiga, fake_anthropic, max_minutes_chars=1000
    ) as h:
        await h.link(h.alice, "alice")
        await h.set_project()
        parent = h.slack.add_message(h.channel, "Call", user=h.alice)
        h.slack.add_file_message(
            h.channel, "call.vtt", b"WEBVTT\n\n" + b"x" * 50_000, user=h.alice, thread_ts=parent
        )

        await plan_here(h, parent)
        told = await h.slack.wait_for("chat.postEphemeral", within=WAIT)
        await h.settle()

        assert "the limit is 1,000" in told.params["text"]
        assert h.anthropic.requests == []
