"""Hostile `POST /agent/run` bodies over HTTP to the app served by uvicorn: generated JSON with
the request's field names and wrong types, blank or enormous values, forged tokens, and bodies
that are not JSON at all. Each is answered with `{"detail": "<sentence>"}` (never a 500), and
nothing is written to Taiga (the fake Anthropic has no plan to give, so no run gets that far)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.faults.hostile import (
    FUZZ,
    INTERNALS,
    Watch,
    hostile_text,
    json_values,
    writes_to_taiga,
)
from tests.peers.fake_anthropic import FakeAnthropic
from tests.peers.fake_slack import FakeSlack
from tests.peers.fake_taiga import PROJECT_ID, FakeTaiga
from tests.peers.slack_harness import Harness, running_harness

KEY = "fuzz-api-key-1"
Json = dict[str, Any]


@pytest.fixture
async def h(
    tmp_path: Path, fake_slack: FakeSlack, fake_taiga: FakeTaiga, fake_anthropic: FakeAnthropic
) -> AsyncIterator[Harness]:
    async with running_harness(
        tmp_path, fake_slack, fake_taiga, fake_anthropic, agent_api_keys=[KEY]
    ) as harness:
        yield harness


ALICE_TOKEN = "<alice's valid token>"  # replaced by a real one before sending

bodies = st.fixed_dictionaries(
    {},
    optional={
        "project_id": st.one_of(st.just(PROJECT_ID), st.integers(), json_values),
        "milestone_id": st.one_of(st.none(), st.integers(), json_values),
        "user_story_id": st.one_of(st.none(), st.integers(), json_values),
        "prompt": st.one_of(hostile_text, st.just(" \n\t"), st.just("x" * 50_001), json_values),
        "auth_token": st.one_of(st.just(ALICE_TOKEN), hostile_text, json_values),
        "refresh": st.one_of(st.none(), hostile_text, json_values),
        "dry_run": st.one_of(st.booleans(), json_values),
        "allow_partial": st.one_of(st.booleans(), json_values),
        "user_context": st.one_of(st.none(), json_values),
    },
)


async def assert_answered_in_words(h: Harness, watch: Watch, status: int, text: str) -> None:
    try:
        assert status != 500 and status < 600, text
        if status >= 400:
            detail = json.loads(text)["detail"]
            assert isinstance(detail, str) and detail.endswith("."), text
            assert INTERNALS.search(detail) is None, detail
        await h.settle()
        assert writes_to_taiga(h.taiga) == [], writes_to_taiga(h.taiga)
        assert watch.seen() == [], watch.seen()
    finally:
        watch.clear()


@pytest.mark.anyio
@FUZZ
@given(body=bodies)
async def test_generated_agent_run_bodies(served: Harness, watch: Watch, body: Json) -> None:
    h = served
    if body.get("auth_token") == ALICE_TOKEN:
        body["auth_token"] = h.taiga.login_tokens("alice")["auth_token"]

    response = await h.http.post(
        "/agent/run", json=body, headers={"Authorization": f"Bearer {KEY}"}
    )

    await assert_answered_in_words(h, watch, response.status_code, response.text)


@pytest.mark.anyio
@FUZZ
@given(
    raw=st.one_of(st.binary(max_size=200), hostile_text.map(str.encode),
                  json_values.map(lambda v: json.dumps(v).encode())),
    content_type=st.sampled_from(["application/json", "text/plain", "", "application/x-www-"
                                  "form-urlencoded"]),
    key=st.one_of(st.just(KEY), st.from_regex(r"\A[!-~]{1,60}\Z")),
)
async def test_bodies_and_keys_that_are_not_what_they_claim(
    served: Harness, watch: Watch, raw: bytes, content_type: str, key: str
) -> None:
    h = served
    headers = {"Authorization": f"Bearer {key}", "content-type": content_type}

    response = await h.http.post("/agent/run", content=raw, headers=headers)

    await assert_answered_in_words(h, watch, response.status_code, response.text)
