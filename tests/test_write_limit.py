"""The executor's adaptive write limit against the fake Taiga: it halves when Taiga throttles,
never sends more writes at once than TAIGA_WRITE_CONCURRENCY, and a big plan still applies fully
(each object once) against a Taiga that throttles."""

from __future__ import annotations

from collections import Counter

import pytest

from agent.executor import apply_plan
from agent.executor.limiter import AdaptiveLimit
from storage.db import Database
from taiga.client import TaigaSession
from taiga.errors import RateLimited
from tests.peers.fake_taiga import PROJECT_ID, FakeTaiga
from tests.test_executor import WEB, proposal, store_plan


@pytest.mark.anyio
async def test_a_429_halves_the_limit_once_per_burst(
    fake_taiga: FakeTaiga, alice: TaigaSession
) -> None:
    limit = AdaptiveLimit(16, start=16)
    fake_taiga.throttle_next(2, wait_seconds=1, method="GET", path="/users/me")

    me = await limit.send(alice.me)  # 429, 429 (one burst), then answered

    assert me.username == "alice"
    assert limit.limit == 8 and limit.halvings == 1


@pytest.mark.anyio
async def test_the_limit_grows_back_one_at_a_time_after_a_full_window(
    fake_taiga: FakeTaiga, alice: TaigaSession
) -> None:
    limit = AdaptiveLimit(16, start=16)
    fake_taiga.throttle_next(1, wait_seconds=1, method="GET", path="/users/me")
    await limit.send(alice.me)
    assert limit.limit == 8

    for _ in range(8):
        await limit.send(alice.me)

    assert limit.limit == 9


@pytest.mark.anyio
async def test_a_long_throttle_wait_fails_the_write_with_taiga_s_wait(
    fake_taiga: FakeTaiga, alice: TaigaSession
) -> None:
    limit = AdaptiveLimit(4)
    fake_taiga.throttle_next(1, wait_seconds=60, method="GET", path="/users/me")

    with pytest.raises(RateLimited, match="try again in 60 s"):
        await limit.send(alice.me)
    assert len(fake_taiga.requests_to("GET", "/users/me")) == 1


@pytest.mark.anyio
async def test_an_apply_never_sends_more_writes_at_once_than_the_setting(
    sqlite_database: Database, fake_taiga: FakeTaiga, alice: TaigaSession
) -> None:
    """Taiga answers 429 to a fourth write in flight: with the setting at 3, none ever gets one."""
    fake_taiga.set_latency(0.01)
    fake_taiga.throttle_above(3, wait_seconds=1)
    plan_id = await store_plan(sqlite_database, proposal(stories=20, tasks=5))

    result = await apply_plan(
        db=sqlite_database, plan_id=plan_id, taiga=alice, web_url=WEB, concurrency=3
    )

    assert result.complete
    sent = Counter(r.path for r in fake_taiga.requests if r.method == "POST")
    assert sent == {"/userstories": 20, "/tasks": 100}  # no write was sent twice


@pytest.mark.anyio
async def test_a_20_by_5_plan_applies_fully_against_a_throttling_taiga(
    sqlite_database: Database, fake_taiga: FakeTaiga, alice: TaigaSession
) -> None:
    fake_taiga.set_latency(0.01)
    fake_taiga.throttle_above(4, wait_seconds=0.05)
    plan_id = await store_plan(sqlite_database, proposal(stories=20, tasks=5, new_sprint="S7"))

    result = await apply_plan(
        db=sqlite_database, plan_id=plan_id, taiga=alice, web_url=WEB, concurrency=16
    )

    assert result.complete and result.failed == []
    assert len(result.created) == 1 + 20 + 100
    subjects = Counter(s["subject"] for s in fake_taiga.stories(PROJECT_ID))
    tasks = Counter(t["subject"] for t in fake_taiga.tasks(PROJECT_ID))
    assert all(subjects[f"Story {s}"] == 1 for s in range(1, 21))
    assert all(tasks[f"Story {s} task {t}"] == 1 for s in range(1, 21) for t in range(1, 6))
    throttled = len([r for r in fake_taiga.requests if r.method == "POST"]) - 121
    assert throttled > 0  # Taiga did throttle: the limit adapted rather than never reaching it
