"""The four measured scenarios. Each takes fixed counts and returns a `Table`.

All peers are the loopback test peers (`tests.peers`); Taiga latency is injected server side by
the fake (`set_latency`), so a "round trip" here is that latency plus loopback overhead.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import Sequence
from datetime import date
from urllib.parse import urlencode

import httpx
from anthropic import AsyncAnthropic
from sqlmodel import Session

from agent.budgets import Budgets
from agent.executor import apply_plan, record_approved_plan
from agent.loop import propose
from agent.proposal import Proposal
from agent.runtime import build_runtime
from agent.settings import Settings
from bench.peers import (
    has_button,
    minutes,
    plan_turn,
    running_taiga,
    signed_headers,
    slow,
    temp_database,
)
from bench.report import Table, median, ms, percentile
from bot.app import build_bot, build_slack_client
from bot.server import create_api
from storage import repositories as repo
from storage.crypto import TokenCipher, generate_key
from storage.db import Database
from taiga.client import TaigaClient, TaigaSession
from taiga.models import TaigaTokens
from tests.peers.fake_anthropic import FakeAnthropic
from tests.peers.fake_slack import FakeSlack
from tests.peers.fake_taiga import PROJECT_ID, PROJECT_SLUG
from tests.peers.timed_taiga import TimedTaiga, critical_path

MODEL = "claude-bench"
WEB = "https://taiga.example.test"
API_KEY = "bench-api-key"
SIGNING_SECRET = "bench-signing-secret-0123456789ab"
NEW_SPRINT = "Sprint 7"  # not in the seeded project: the plan creates it
EXISTING_SPRINT = "Sprint 6"
BIG_STORIES, BIG_TASKS = 20, 5
MINUTES = minutes(25)


def _settings(**values: object) -> Settings:
    """Production settings (budgets included) pointed at the peers; no `.env` is read."""
    base: dict[str, object] = {
        "anthropic_api_key": "bench",
        "anthropic_model": MODEL,
        "taiga_web_url": WEB,
        "slack_app_token": "",
    }
    return Settings(_env_file=None, **(base | values))  # type: ignore[call-arg]


def _alice(client: TaigaClient, taiga: TimedTaiga) -> TaigaSession:
    return client.session(TaigaTokens(**taiga.login_tokens("alice")))


async def _propose(
    anthropic: AsyncAnthropic,
    fake_anthropic: FakeAnthropic,
    session: TaigaSession,
    sprint: str,
    prefix: str,
) -> Proposal:
    fake_anthropic.script(plan_turn(BIG_STORIES, BIG_TASKS, prefix=prefix))
    return await propose(
        anthropic=anthropic,
        model=MODEL,
        taiga=session,
        project_ref=PROJECT_ID,
        sprint_name=sprint,
        minutes=MINUTES,
        budgets=Budgets.from_settings(_settings()),
        clock=session.client.clock,
        today=date(2024, 5, 20),
    )


def _check_big(proposal: Proposal) -> None:
    tasks = sum(len(s.tasks) for s in proposal.stories)
    if len(proposal.stories) != BIG_STORIES or tasks != BIG_STORIES * BIG_TASKS:
        raise RuntimeError(
            f"propose returned {len(proposal.stories)} stories / {tasks} tasks "
            f"(stopped: {proposal.stopped}; warnings: {proposal.warnings})"
        )


# --------------------------------------------------------------------------- 1. propose


async def bench_propose(latencies: Sequence[float], runs: int) -> Table:
    table = Table(
        f"1. propose: {BIG_STORIES} stories x {BIG_TASKS} tasks, one scripted model turn "
        f"(median of {runs} runs after 1 warm-up)",
        [
            "Taiga latency / sprint",
            "wall",
            "prefetch",
            "rest",
            "model calls",
            "Taiga reqs",
            "depth",
            "proposed",
        ],
    )
    with FakeAnthropic() as fake_anthropic:
        async with AsyncAnthropic(
            api_key="bench", base_url=fake_anthropic.base_url, max_retries=0
        ) as anthropic:
            for latency in latencies:
                for sprint, label in ((NEW_SPRINT, "new"), (EXISTING_SPRINT, "existing")):
                    with running_taiga(latency) as taiga:
                        async with TaigaClient(taiga.api_url) as client:
                            session = _alice(client, taiga)
                            await _propose(anthropic, fake_anthropic, session, sprint, "warm-up")
                            walls, prefetches, requests, depths = [], [], [], []
                            proposal: Proposal | None = None
                            for i in range(runs):
                                t0 = time.perf_counter()
                                proposal = await _propose(
                                    anthropic, fake_anthropic, session, sprint, f"run {i}"
                                )
                                t1 = time.perf_counter()
                                _check_big(proposal)
                                spans = taiga.spans(t0, t1)
                                walls.append(t1 - t0)
                                prefetches.append(max(s.end for s in spans) - t0)
                                requests.append(len(spans))
                                depths.append(critical_path(spans))
                    assert proposal is not None
                    wall, prefetch = median(walls), median(prefetches)
                    table.add(
                        f"{latency * 1000:g} ms / {label} ({sprint})",
                        ms(wall),
                        ms(prefetch),
                        ms(wall - prefetch),
                        proposal.usage.model_calls,
                        max(requests),
                        max(depths) if latency else "-",
                        f"{len(proposal.stories)} / {sum(len(s.tasks) for s in proposal.stories)}",
                    )
    table.notes = [
        "prefetch: from the call until Taiga answered its last read; rest: the model call "
        "and recording the 20 tool calls.",
        "Taiga reqs: all requests during propose (all are prefetch: the model's turn holds only "
        "writes, which are recorded, not sent).",
        "depth: Taiga round trips on the critical path, from server-side overlaps (shown only "
        "with latency): project first, then sprints and sprint stories concurrently.",
    ]
    return table


async def make_big_plan() -> Proposal:
    """The 20 x 5 plan into a new sprint, proposed by the real loop at 0 ms."""
    with FakeAnthropic() as fake_anthropic, running_taiga(0.0) as taiga:
        async with (
            AsyncAnthropic(
                api_key="bench", base_url=fake_anthropic.base_url, max_retries=0
            ) as anthropic,
            TaigaClient(taiga.api_url) as client,
        ):
            proposal = await _propose(
                anthropic, fake_anthropic, _alice(client, taiga), NEW_SPRINT, "apply"
            )
    _check_big(proposal)
    return proposal


# --------------------------------------------------------------------------- 2. apply


def _expected_round_trips(concurrency: int) -> int:
    return (
        1 + math.ceil(BIG_STORIES / concurrency) + math.ceil(BIG_STORIES * BIG_TASKS / concurrency)
    )


async def bench_apply(
    latencies: Sequence[float], concurrencies: Sequence[int], runs_at_zero: int
) -> Table:
    proposal = await make_big_plan()
    writes = 1 + BIG_STORIES + BIG_STORIES * BIG_TASKS
    table = Table(
        f"2. apply_plan: new sprint + {BIG_STORIES} stories + {BIG_STORIES * BIG_TASKS} tasks "
        f"= {writes} POSTs (SQLite ledger in a temp file)",
        [
            "latency / concurrency",
            "wall",
            "POSTs",
            "writes/s",
            "depth",
            "expected",
            "latency floor",
            "overhead/RT",
            "ledger txn (mean)",
        ],
    )
    for latency in latencies:
        for concurrency in concurrencies:
            runs = runs_at_zero if latency == 0 else 1
            walls, posts, depths, others, ledger = [], [], [], [], []
            for _ in range(runs):
                with temp_database() as db, running_taiga(latency) as taiga:
                    plan_id = await record_approved_plan(
                        db, proposal, minutes=MINUTES, decided_by="bench"
                    )
                    db.durations.clear()
                    async with TaigaClient(taiga.api_url) as client:
                        session = _alice(client, taiga)
                        t0 = time.perf_counter()
                        result = await apply_plan(
                            db=db,
                            plan_id=plan_id,
                            taiga=session,
                            web_url=WEB,
                            concurrency=concurrency,
                        )
                        t1 = time.perf_counter()
                    if not result.complete or len(result.created) != writes:
                        raise RuntimeError(f"apply_plan: {result.state}, {result.failed[:3]}")
                    spans = taiga.spans(t0, t1)
                    sent = [s for s in spans if s.method == "POST"]
                    walls.append(t1 - t0)
                    posts.append(len(sent))
                    others.append(len(spans) - len(sent))
                    depths.append(critical_path(sent))
                    ledger.append(sum(db.durations) / len(db.durations))
            wall = median(walls)
            expected = _expected_round_trips(concurrency)
            floor = expected * latency
            depth = max(depths)
            table.add(
                f"{latency * 1000:g} ms / c={concurrency}"
                + (f" (median of {runs})" if runs > 1 else ""),
                ms(wall),
                max(posts) if not any(others) else f"{max(posts)} (+{max(others)} other)",
                f"{max(posts) / wall:,.0f}",
                depth if latency else "-",
                expected,
                ms(floor) if latency else "-",
                ms((wall - floor) / depth) if latency else ms(wall / max(posts)) + "/POST",
                ms(median(ledger)),
            )
    table.notes = [
        "expected = 1 (sprint) + ceil(20/c) (stories) + ceil(100/c) (tasks) round trips; depth is "
        "measured from server-side overlaps of the POSTs.",
        "latency floor = expected x latency; overhead/RT = (wall - floor) / depth: loopback "
        "HTTP, JSON and the ledger: one transaction claims a phase's writes (pending) before "
        "they are sent, one marks each POST done.",
        "ledger txn: mean time of one database transaction during apply (a phase's claim or a "
        "completion), queueing included: SQLite lets one writer in at a time.",
    ]
    return table


# --------------------------------------------------------------------------- 3. /agent/run


async def bench_agent_run(latencies: Sequence[float], runs: int) -> Table:
    table = Table(
        f"3. POST /agent/run end to end: 3 stories x 2 tasks into {EXISTING_SPRINT} "
        f"({runs} runs after 1 warm-up; ASGI transport, SQLite temp file)",
        ["Taiga latency", "p50", "p95", "max", "Taiga reqs/run", "depth", "model calls"],
    )
    for latency in latencies:
        with (
            FakeAnthropic() as fake_anthropic,
            running_taiga(latency) as taiga,
            temp_database() as db,
        ):
            settings = _settings(
                taiga_api_url=taiga.api_url,
                anthropic_base_url=fake_anthropic.base_url,
                database_url=db.url.render_as_string(hide_password=False),
                agent_api_keys=[API_KEY],
                token_encryption_keys=[],
            )
            runtime = build_runtime(settings, db=db)
            app = create_api(settings, runtime=runtime)
            walls, requests, depths, calls = [], [], [], []
            try:
                async with httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app), base_url="http://api", timeout=30.0
                ) as http:
                    for i in range(runs + 1):
                        # A fresh word per run: stories of earlier runs would be likely
                        # duplicates of "run 2: story 1" and be left out.
                        fake_anthropic.script(plan_turn(3, 2, prefix=uuid.uuid4().hex[:10]))
                        body = {
                            "project_id": PROJECT_ID,
                            "prompt": MINUTES + f"Create user stories and tasks for "
                            f"{EXISTING_SPRINT}.",
                            "auth_token": taiga.login_tokens("alice")["auth_token"],
                        }
                        t0 = time.perf_counter()
                        response = await http.post(
                            "/agent/run",
                            json=body,
                            headers={"Authorization": f"Bearer {API_KEY}"},
                        )
                        t1 = time.perf_counter()
                        answer = response.json()
                        created = (answer.get("artifacts") or {}).get("user_stories") or []
                        if response.status_code != 200 or len(created) != 3:
                            raise RuntimeError(f"/agent/run {response.status_code}: {answer}")
                        if i == 0:
                            continue  # warm-up
                        spans = taiga.spans(t0, t1)
                        walls.append(t1 - t0)
                        requests.append(len(spans))
                        depths.append(critical_path(spans))
                        calls.append(answer["usage"]["model_calls"])
            finally:
                await runtime.aclose()
        table.add(
            f"{latency * 1000:g} ms",
            ms(percentile(walls, 50)),
            ms(percentile(walls, 95)),
            ms(max(walls)),
            max(requests),
            max(depths) if latency else "-",
            max(calls),
        )
    table.notes = [
        "Taiga reqs/run: GET project (read once, handed to propose) + sprints, the project's "
        "stories (propose: the sprint's, the backlog and duplicates) + GET users/me (apply: "
        "who sends the writes) + 3 story POSTs + 6 task POSTs.",
        "depth: GET project -> sprints | stories -> users/me -> 3 stories -> "
        "6 tasks at c=4 (2 round trips).",
    ]
    return table


# --------------------------------------------------------------------------- 4. Slack ack


async def bench_slack_ack(requests: int, model_delay: float) -> Table:
    table = Table(
        f"4. Slack ack: signed '/taiga plan' to /slack/events, model turn slowed to "
        f"{model_delay * 1000:g} ms ({requests} requests, one after another)",
        ["measure", "p50", "p95", "max"],
    )
    # FakeSlack runs its own event loop in a thread; start and stop it off this loop.
    slack = FakeSlack()
    await asyncio.to_thread(slack.start)
    try:
        await _slack_ack_runs(slack, table, requests, model_delay)
    finally:
        await asyncio.to_thread(slack.stop)
    return table


async def _slack_ack_runs(
    slack: FakeSlack, table: Table, requests: int, model_delay: float
) -> None:
    acks: list[float] = []
    shown: list[float] = []
    early = 0
    with (
        FakeAnthropic() as fake_anthropic,
        running_taiga(0.0) as taiga,
        temp_database() as db,
    ):
        settings = _settings(
            slack_bot_token=slack.bot_token,
            slack_signing_secret=SIGNING_SECRET,
            slack_api_url=slack.api_url,
            taiga_api_url=taiga.api_url,
            anthropic_base_url=fake_anthropic.base_url,
            database_url=db.url.render_as_string(hide_password=False),
            token_encryption_keys=[generate_key()],
        )
        runtime = build_runtime(settings, db=db)
        bot = build_bot(runtime, slack=build_slack_client(settings))
        app = create_api(settings, runtime=runtime, slack=bot)
        channel = slack.add_channel("planning")
        alice = slack.add_user("Alice Doe", display_name="alice")
        await _link(runtime.db, runtime.cipher, slack, taiga, alice, channel)
        try:
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://slack", timeout=10.0
            ) as http:
                for i in range(requests):
                    fake_anthropic.script(slow(plan_turn(2, 2, prefix=f"ack {i}"), model_delay))
                    form = slack.slash_command_form(
                        "/taiga", f"plan {EXISTING_SPRINT}\n{MINUTES}", user=alice, channel=channel
                    )
                    body = urlencode(form)
                    t0 = time.perf_counter()
                    response = await http.post(
                        "/slack/events",
                        content=body.encode(),
                        headers=signed_headers(body, SIGNING_SECRET),
                    )
                    acked = time.perf_counter() - t0
                    if response.status_code != 200:
                        raise RuntimeError(f"/slack/events answered {response.status_code}")
                    early += _proposals_shown(slack) == i  # acked before the plan was shown
                    await slack.wait_for(
                        "chat.update",
                        lambda c: c.ok and has_button(c.params, "plan_approve"),
                        count=i + 1,
                        within=10.0,
                    )
                    acks.append(acked)
                    shown.append(time.perf_counter() - t0)
        finally:
            async with asyncio.timeout(10):
                await bot.services.drain()
            await bot.aclose()
            await runtime.aclose()
    table.add("HTTP ack", ms(percentile(acks, 50)), ms(percentile(acks, 95)), ms(max(acks)))
    table.add(
        "proposal shown",
        ms(percentile(shown, 50)),
        ms(percentile(shown, 95)),
        ms(max(shown)),
    )
    table.notes = [
        f"acked before the proposal was shown: {early}/{requests}; Slack's limit is 3,000 ms.",
        "proposal shown: until chat.update puts the Approve button on the thread's status "
        "message (background task; includes the slowed model turn).",
        "The first request includes Bolt's lazy auth.test against the fake Slack.",
    ]


def _proposals_shown(slack: FakeSlack) -> int:
    return sum(
        1 for c in slack.calls("chat.update") if c.ok and has_button(c.params, "plan_approve")
    )


async def _link(
    db: Database,
    cipher: TokenCipher | None,
    slack: FakeSlack,
    taiga: TimedTaiga,
    user: str,
    channel: str,
) -> None:
    """Link `user` to Taiga's alice (as the login modal would) and set the channel's project."""
    tokens = taiga.login_tokens("alice")
    alice_id = taiga.user("alice").id

    assert cipher is not None

    def store(session: Session) -> None:
        repo.save_link(
            session,
            cipher=cipher,
            team_id=slack.team_id,
            user_id=user,
            taiga_user_id=alice_id,
            taiga_username="alice",
            tokens=repo.StoredTokens(tokens["auth_token"], tokens["refresh"]),
        )
        repo.set_channel_project(
            session,
            team_id=slack.team_id,
            channel_id=channel,
            project_id=PROJECT_ID,
            project_slug=PROJECT_SLUG,
            project_name="Peer Client Test",
            set_by=user,
        )

    await db.run(store)
