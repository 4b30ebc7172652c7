"""Mentions: planning from a thread (every page), minutes in the message, asking for minutes,
and Slack's re-deliveries."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from storage.models import SlackEvent
from tests.peers.fake_anthropic import FakeAnthropic
from tests.peers.fake_slack import FakeSlack
from tests.peers.fake_taiga import FakeTaiga
from tests.peers.slack_harness import (
    WAIT,
    Harness,
    block_text,
    has_button,
    model_prompt,
    running_harness,
    story_turn,
)
from tests.peers.slack_setups import alice_plans_here

TURN = story_turn(("Export plans as CSV", ["Write the CSV writer"]))


h = alice_plans_here



@pytest.mark.anyio
async def test_a_mention_in_a_thread_plans_from_every_page_of_the_thread(h: Harness) -> None:
    bot = h.slack.bot_user_id
    parent = h.slack.add_message(h.channel, "Kickoff notes &amp; decisions", user=h.alice)
    for n in range(204):
        h.slack.add_message(h.channel, f"note {n}", user=h.bob, thread_ts=parent)
    h.slack.add_message(
        h.channel, f"<@{h.bob}> will build &lt;the export&gt; *fast*", user=h.alice,
        thread_ts=parent,
    )
    await h.bot.services.slack.chat_postMessage(
        channel=h.channel, thread_ts=parent, text="an earlier bot reply"
    )
    h.anthropic.script(TURN)

    envelope = h.slack.app_mention_event(
        h.channel, f"<@{bot}> plan Sprint 6", user=h.alice, thread_ts=parent
    )
    response = await h.event(envelope)

    assert response.status_code == 200
    proposal = await h.wait_update(lambda p: has_button(p, "plan_approve"))
    replies = h.slack.calls("conversations.replies")
    assert len(replies) >= 2 and replies[-1].params.get("cursor")
    prompt = model_prompt(h)
    assert "Kickoff notes & decisions" in prompt
    assert "note 203" in prompt
    assert "@bob will build <the export> *fast*" in prompt
    assert "an earlier bot reply" not in prompt and "plan Sprint 6" not in prompt
    assert h.slack.message(h.channel, proposal["ts"])["thread_ts"] == parent


@pytest.mark.anyio
async def test_a_mention_with_the_minutes_outside_a_thread_answers_in_a_thread_under_it(
    h: Harness,
) -> None:
    h.anthropic.script(TURN)
    envelope = h.slack.app_mention_event(
        h.channel, f"<@{h.slack.bot_user_id}> plan Sprint 6\nShip the export.", user=h.alice
    )

    await h.event(envelope)

    proposal = await h.wait_update(lambda p: has_button(p, "plan_approve"))
    mention_ts = envelope["event"]["ts"]
    assert h.slack.message(h.channel, proposal["ts"])["thread_ts"] == mention_ts
    assert "Ship the export." in model_prompt(h)


@pytest.mark.anyio
async def test_a_redelivered_event_starts_nothing_new(h: Harness) -> None:
    h.anthropic.script(TURN)
    envelope = h.slack.app_mention_event(
        h.channel, f"<@{h.slack.bot_user_id}> plan Sprint 6\nShip the export.", user=h.alice
    )

    first = await h.event(envelope)
    await h.wait_update(lambda p: has_button(p, "plan_approve"))
    again = await h.event(
        envelope, **{"x-slack-retry-num": "1", "x-slack-retry-reason": "http_timeout"}
    )
    await h.settle()

    assert first.status_code == again.status_code == 200
    assert len(await h.plans()) == 1
    assert len(h.anthropic.requests) == 1


@pytest.mark.anyio
async def test_event_ids_are_forgotten_after_a_day(h: Harness) -> None:
    h.anthropic.script(TURN, TURN)
    await h.event(h.slack.app_mention_event(
        h.channel, f"<@{h.slack.bot_user_id}> plan Sprint 6\nShip the export.", user=h.alice
    ))
    await h.wait_update(lambda p: has_button(p, "plan_approve"))
    h.wall.offset += timedelta(days=2)

    await h.event(h.slack.app_mention_event(
        h.channel, f"<@{h.slack.bot_user_id}> plan Sprint 6\nShip the import.", user=h.alice
    ))
    await h.settle()

    remembered = await h.db.run(lambda s: s.exec(select(SlackEvent)).all())
    assert len(remembered) == 1


@pytest.mark.anyio
async def test_plan_without_minutes_asks_for_them_and_plans_from_the_reply(h: Harness) -> None:
    h.anthropic.script(TURN)
    await h.command("plan Sprint 6 <!here>")
    ask = await h.slack.wait_for("chat.postMessage", within=WAIT)
    ask_ts = ask.response["ts"]
    assert "minutes" in ask.params["text"] and "<!here>" not in ask.params["text"]
    await h.settle()
    assert h.anthropic.requests == []

    reply = h.slack.app_mention_event(
        h.channel, f"<@{h.slack.bot_user_id}> Ship the export &amp; the import.",
        user=h.alice, thread_ts=ask_ts,
    )
    await h.event(reply)

    proposal = await h.wait_update(lambda p: has_button(p, "plan_approve"))
    assert h.slack.message(h.channel, proposal["ts"])["thread_ts"] == ask_ts
    assert "Ship the export & the import." in model_prompt(h)
    assert "Sprint 6" in block_text(proposal)


@pytest.mark.anyio
async def test_an_unrelated_mention_gets_a_private_usage_hint(h: Harness) -> None:
    envelope = h.slack.app_mention_event(
        h.channel, f"<@{h.slack.bot_user_id}> hello", user=h.alice
    )
    await h.event(envelope)
    told = await h.slack.wait_for("chat.postEphemeral", within=WAIT)
    await h.settle()
    assert "plan <sprint name>" in told.params["text"]
    assert told.params["user"] == h.alice
    assert told.params["thread_ts"] == envelope["event"]["ts"]
    assert h.slack.calls("chat.postMessage") == [] and h.anthropic.requests == []


@pytest.mark.anyio
async def test_editing_a_message_that_mentions_the_bot_starts_no_second_plan(h: Harness) -> None:
    h.anthropic.script(TURN, TURN)
    envelope = h.slack.app_mention_event(
        h.channel, f"<@{h.slack.bot_user_id}> plan Sprint 6\nShip the export.", user=h.alice
    )
    await h.event(envelope)
    await h.wait_update(lambda p: has_button(p, "plan_approve"))

    edit = h.slack.edited_mention_event(
        envelope, f"<@{h.slack.bot_user_id}> plan Sprint 6\nShip the export today."
    )
    response = await h.event(edit)
    await h.settle()

    assert response.status_code == 200
    assert len(await h.plans()) == 1
    assert len(h.anthropic.requests) == 1


@pytest.mark.anyio
async def test_deleted_and_system_messages_in_the_thread_are_not_minutes(h: Harness) -> None:
    parent = h.slack.add_message(h.channel, "Old kickoff notes", user=h.alice)
    h.slack.add_message(h.channel, "Ship the export.", user=h.bob, thread_ts=parent)
    gone = h.slack.add_message(h.channel, "A reply deleted later", user=h.bob, thread_ts=parent)
    h.slack.add_message(h.channel, "Ship the import.", user=h.alice, thread_ts=parent)
    h.slack.delete_message(h.channel, parent)
    h.slack.delete_message(h.channel, gone)
    h.slack.add_message(
        h.channel, f"<@{h.bob}> has joined the channel", user=h.bob, thread_ts=parent,
        subtype="channel_join",
    )
    h.slack.add_message(
        h.channel, "Also: the export history page.", user=h.bob, thread_ts=parent,
        subtype="thread_broadcast",
    )
    h.slack.add_message(
        h.channel, "The mock-ups are attached.", user=h.alice, thread_ts=parent,
        subtype="file_share",
    )
    h.anthropic.script(TURN)

    await h.event(h.slack.app_mention_event(
        h.channel, f"<@{h.slack.bot_user_id}> plan Sprint 6", user=h.alice, thread_ts=parent
    ))
    await h.wait_update(lambda p: has_button(p, "plan_approve"))

    prompt = model_prompt(h)
    assert "Ship the export." in prompt and "Ship the import." in prompt
    assert "export history page" in prompt and "mock-ups are attached" in prompt
    assert "has joined the channel" not in prompt
    assert "This message was deleted." not in prompt
    assert "deleted later" not in prompt and "Old kickoff notes" not in prompt


@pytest.mark.anyio
async def test_a_slack_failure_while_reading_the_thread_is_told_privately(h: Harness) -> None:
    parent = h.slack.add_message(h.channel, "Ship the export.", user=h.alice)
    h.slack.fail_next("conversations.replies", "internal_error")

    await h.event(h.slack.app_mention_event(
        h.channel, f"<@{h.slack.bot_user_id}> plan Sprint 6", user=h.alice, thread_ts=parent
    ))
    told = await h.slack.wait_for("chat.postEphemeral", within=WAIT)

    assert told.params["user"] == h.alice and told.params["thread_ts"] == parent
    assert "Something went wrong" in told.params["text"]
    assert "internal_error" not in told.params["text"]


@pytest.mark.anyio
async def test_each_person_who_writes_or_is_mentioned_in_the_thread_is_looked_up_once(
    h: Harness,
) -> None:
    parent = h.slack.add_message(h.channel, "Kickoff", user=h.alice)
    for n in range(30):
        h.slack.add_message(
            h.channel, f"<@{h.bob}> takes item {n}", user=h.alice, thread_ts=parent
        )
    h.anthropic.script(TURN)

    await h.event(h.slack.app_mention_event(
        h.channel, f"<@{h.slack.bot_user_id}> plan Sprint 6", user=h.alice, thread_ts=parent
    ))
    await h.wait_update(lambda p: has_button(p, "plan_approve"))

    assert "Alice Doe (@alice): @bob takes item 29" in model_prompt(h)
    assert sorted(c.params["user"] for c in h.slack.calls("users.info")) == sorted(
        [h.alice, h.bob]
    )


@pytest.mark.anyio
async def test_thread_minutes_over_the_limit_across_pages_are_refused(
    tmp_path: Path, fake_slack: FakeSlack, fake_taiga: FakeTaiga, fake_anthropic: FakeAnthropic
) -> None:
    async with running_harness(
        tmp_path, fake_slack, fake_taiga, fake_anthropic, max_minutes_chars=1000
    ) as h:
        await h.link(h.alice, "alice")
        await h.set_project()
        parent = h.slack.add_message(h.channel, "Kickoff", user=h.alice)
        for n in range(210):  # two pages of short notes, 1,000+ characters together
            h.slack.add_message(h.channel, f"note {n}", user=h.bob, thread_ts=parent)

        await h.event(h.slack.app_mention_event(
            h.channel, f"<@{h.slack.bot_user_id}> plan Sprint 6", user=h.alice, thread_ts=parent
        ))
        told = await h.slack.wait_for("chat.postEphemeral", within=WAIT)
        await h.settle()

        assert "the limit is 1,000" in told.params["text"]
        assert h.slack.call_count("conversations.replies") == 2
        assert h.anthropic.requests == [] and await h.plans() == []
