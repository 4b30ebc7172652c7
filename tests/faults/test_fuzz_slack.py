"""Hostile Slack requests, signed with the app's signing secret so they get past verification
into our parsing, sent over HTTP to the app served by uvicorn: slash commands, events, block
actions and view submissions with generated fields, and bodies that are not what they claim.

Each must be answered without a 500, end in words (if anything is said), write nothing to
Taiga and leave no failure behind in the log or the event loop."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.blocks.actions import (
    ACTION_APPROVE,
    ACTION_EDIT,
    ACTION_PICK,
    ACTION_REJECT,
    ACTION_RETRY,
    ACTION_UNDO,
    ACTION_VIEW,
    ACTION_VIEW_PAGE,
)
from bot.blocks.edit import EDIT_CALLBACK_ID
from bot.blocks.login import LOGIN_CALLBACK_ID
from tests.faults.hostile import (
    FUZZ,
    Watch,
    assert_survived,
    hostile_text,
    json_values,
)
from tests.peers.slack_harness import SIGNING_SECRET, Harness, story_turn

Json = dict[str, Any]
FORM = "application/x-www-form-urlencoded"
SUBCOMMANDS = ("", "plan ", "plan Sprint 6\n", "login", "logout", "project ", "account", "help")
ACTION_IDS = (
    ACTION_APPROVE, ACTION_EDIT, ACTION_REJECT, ACTION_RETRY, ACTION_UNDO, ACTION_VIEW,
    f"{ACTION_VIEW_PAGE}:next", f"{ACTION_PICK}:0",
)  # fmt: skip
ids = st.one_of(st.sampled_from(["U1", "C1", "T1", ""]), hostile_text)


def mutate(base: Json, changes: Json) -> Json:
    """`base` with some fields replaced by generated values (None: the field left out)."""
    result = dict(base)
    for key, value in changes.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = value
    return result


field_changes = st.dictionaries(
    st.sampled_from(["user", "team", "channel", "actions", "view", "message", "container",
                     "response_url", "trigger_id", "type", "state"]),
    json_values, max_size=3,
)


@pytest.mark.anyio
@FUZZ
@given(
    sub=st.sampled_from(SUBCOMMANDS), text=hostile_text,
    changes=st.dictionaries(
        st.sampled_from(["user_id", "channel_id", "team_id", "command", "response_url",
                         "trigger_id"]),
        st.one_of(st.none(), ids), max_size=2,
    ),
)
async def test_generated_slash_commands(
    served: Harness, watch: Watch, sub: str, text: str, changes: Json
) -> None:
    h = served
    form = mutate(h.slack.slash_command_form("/taiga", sub + text, user=h.bob, channel=h.channel),
                  changes)

    response = await h.post(urlencode(form), FORM)

    await assert_survived(h, watch, response)


@pytest.mark.anyio
@FUZZ
@given(action_id=st.sampled_from(ACTION_IDS), value=hostile_text, changes=field_changes)
async def test_generated_block_actions(
    served: Harness, watch: Watch, action_id: str, value: str, changes: Json
) -> None:
    h = served
    payload = mutate(block_action(h, action_id, value), changes)

    response = await h.payload(payload)

    await assert_survived(h, watch, response)


@pytest.mark.anyio
@FUZZ
@given(
    action_id=st.sampled_from(ACTION_IDS), by_alice=st.booleans(),
    suffix=st.one_of(hostile_text, st.sampled_from(["1", "\u00b2", "9" * 30, "-1", "1:2"])),
    ticked=st.lists(hostile_text, max_size=3),
)
async def test_generated_clicks_on_a_real_proposal(
    served: Harness, watch: Watch, action_id: str, suffix: str, by_alice: bool,
    ticked: list[str],
) -> None:
    """Alice's proposal, clicked with hostile values naming it: by Bob (not linked, not its
    requester), or by Alice on a button that writes nothing (View, Edit, a pick, a page)."""
    h = served
    plan_id, message_ts = await proposal_of_alice(h)
    harmless = action_id in {ACTION_VIEW, ACTION_EDIT, f"{ACTION_VIEW_PAGE}:next"}
    user = h.alice if by_alice and (harmless or action_id.startswith(ACTION_PICK)) else h.bob
    payload = block_action(h, action_id, f"{plan_id}:{suffix}", ts=message_ts, user=user)
    payload["actions"][0]["selected_options"] = [{"value": value} for value in ticked]

    response = await h.payload(payload)

    await assert_survived(h, watch, response)


@pytest.mark.anyio
@FUZZ
@given(
    callback_id=st.sampled_from([LOGIN_CALLBACK_ID, EDIT_CALLBACK_ID]),
    values=st.dictionaries(hostile_text, st.dictionaries(hostile_text, json_values, max_size=2),
                           max_size=3),
    metadata=hostile_text, changes=field_changes,
)
async def test_generated_view_submissions(
    served: Harness, watch: Watch, callback_id: str, values: Json, metadata: str, changes: Json
) -> None:
    h = served
    payload = mutate(view_submission(h, callback_id, values, metadata), changes)

    response = await h.payload(payload)

    await assert_survived(h, watch, response)


@pytest.mark.anyio
@FUZZ
@given(
    text=hostile_text, by_alice=st.booleans(),
    lead=st.sampled_from(["", "plan Sprint 6\n", "plan ", "help "]),
    event_changes=st.dictionaries(
        st.sampled_from(["channel", "user", "ts", "thread_ts", "text", "edited", "type"]),
        st.one_of(st.none(), json_values), max_size=3,
    ),
)
async def test_generated_mentions(
    served: Harness, watch: Watch, text: str, by_alice: bool, lead: str, event_changes: Json
) -> None:
    """By Bob (not linked) or by Alice (linked; a plan she asks for meets a model that has no
    answer scripted, so it fails in words)."""
    h = served
    if by_alice:
        await h.link(h.alice, "alice")
        await h.set_project()
    envelope = h.slack.app_mention_event(
        h.channel, f"<@{h.slack.bot_user_id}> {lead}{text}", user=h.alice if by_alice else h.bob
    )
    envelope["event"] = mutate(envelope["event"], event_changes)

    response = await h.event(envelope)

    await assert_survived(h, watch, response)


@pytest.mark.anyio
@FUZZ
@given(
    body=st.one_of(
        st.binary(max_size=300),
        hostile_text.map(lambda t: urlencode({"payload": t})),
        json_values.map(lambda v: urlencode({"payload": json.dumps(v)})),
        json_values.map(json.dumps),
        hostile_text,
    ),
    content_type=st.sampled_from([FORM, "application/json", "text/plain", ""]),
)
async def test_bodies_that_are_not_what_they_claim(
    served: Harness, watch: Watch, body: str | bytes, content_type: str
) -> None:
    h = served
    raw = body.encode() if isinstance(body, str) else body

    response = await h.http.post(
        "/slack/events", content=raw, headers=signed_bytes(raw, content_type)
    )

    await assert_survived(h, watch, response)
    assert response.status_code in {200, 400, 404}, response.text


@pytest.mark.anyio
@FUZZ
@given(
    timestamp=st.one_of(st.just(str(int(time.time()))), st.sampled_from(["\u00b2", "-1", ""]),
                        st.from_regex(r"\A[!-~]{0,20}\Z")),
    signature=st.one_of(st.just("v0=00"), st.from_regex(r"\A[ -~\u00a0-\u00ff]{0,80}\Z")),
)
async def test_hostile_signature_headers_on_an_unreadable_body_are_refused(
    served: Harness, watch: Watch, timestamp: str, signature: str
) -> None:
    h = served
    headers = {"content-type": FORM, "x-slack-request-timestamp": timestamp.encode("latin-1"),
               "x-slack-signature": signature.encode("latin-1")}

    response = await h.http.post("/slack/events", content=b"payload=%7B", headers=headers)

    assert response.status_code == 401
    await assert_survived(h, watch, response)


@pytest.mark.anyio
async def test_a_signed_interactivity_body_whose_payload_is_not_json_is_refused_in_words(
    served: Harness, watch: Watch
) -> None:
    h = served

    response = await h.post(urlencode({"payload": "{not json"}), FORM)

    assert response.status_code == 400
    assert response.text == "This request is not a Slack payload the app can read."
    await assert_survived(h, watch, response)


@pytest.mark.anyio
async def test_an_unsigned_unreadable_body_is_refused_as_unsigned(
    served: Harness, watch: Watch
) -> None:
    h = served
    headers = h.headers("something else", content_type=FORM)

    response = await h.http.post("/slack/events", content=b"payload=%7Bnot", headers=headers)

    assert response.status_code == 401
    await assert_survived(h, watch, response)


# ------------------------------------------------------------------------------ builders


def signed_bytes(raw: bytes, content_type: str) -> dict[str, str]:
    """Slack signs the raw bytes (the harness signs text, which cannot be any bytes)."""
    ts = str(int(time.time()))
    digest = hmac.new(SIGNING_SECRET.encode(), b"v0:" + ts.encode() + b":" + raw, hashlib.sha256)
    return {
        "content-type": content_type, "x-slack-request-timestamp": ts,
        "x-slack-signature": f"v0={digest.hexdigest()}",
    }  # fmt: skip


async def proposal_of_alice(h: Harness) -> tuple[str, str]:
    """Alice's proposal in the channel (made on first use): its plan id and message ts."""
    plans = [p for p in await h.plans() if p.state == "proposed"]
    if not plans:
        await h.link(h.alice, "alice")
        await h.set_project()
        h.anthropic.script(story_turn(("Export plans as CSV", ["Write the CSV writer"])))
        await h.command("plan Sprint 6\nShip the CSV export.")
        await h.proposal_ts()
        await h.settle()
        plans = [p for p in await h.plans() if p.state == "proposed"]
    plan = plans[0]
    return plan.id, str(plan.slack_message_ts)


def block_action(
    h: Harness, action_id: str, value: str, *, ts: str | None = None, user: str | None = None
) -> Json:
    ts = ts or h.slack.add_message(h.channel, "Proposed sprint plan", user=h.slack.bot_user_id)
    user = user or h.bob
    return {
        "type": "block_actions", "user": {"id": user, "team_id": h.slack.team_id},
        "team": {"id": h.slack.team_id}, "api_app_id": h.slack.app_id,
        "container": {"type": "message", "message_ts": ts, "channel_id": h.channel},
        "channel": {"id": h.channel}, "message": {"ts": ts, "text": "", "blocks": []},
        "trigger_id": h.slack.mint_trigger_id(),
        "response_url": h.slack.mint_response_url(channel=h.channel, user=user),
        "actions": [{"type": "button", "action_id": action_id, "block_id": value,
                     "value": value, "action_ts": "1.2"}],
    }  # fmt: skip


def view_submission(h: Harness, callback_id: str, values: Json, metadata: str) -> Json:
    return {
        "type": "view_submission", "user": {"id": h.bob, "team_id": h.slack.team_id},
        "team": {"id": h.slack.team_id}, "api_app_id": h.slack.app_id,
        "trigger_id": h.slack.mint_trigger_id(),
        "view": {"id": "V1", "type": "modal", "callback_id": callback_id,
                 "private_metadata": metadata, "state": {"values": values}},
    }  # fmt: skip
