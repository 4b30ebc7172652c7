"""Propose and `POST /agent/run` (and the plans the apply scenario applies). Each takes fixed
counts and returns a `Table` with its figures.

All peers are the loopback test peers (`tests.peers`); Taiga latency is injected server side by
the fake (`set_latency`), so a "round trip" here is that latency plus loopback overhead.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from datetime import date

import httpx
from anthropic import AsyncAnthropic

from agent.budgets import Budgets
from agent.loop import propose
from agent.proposal import Proposal
from agent.runtime import build_runtime
from agent.settings import Settings
from bench.peers import (
    minutes,
    plan_turn,
    running_taiga,
    temp_database,
)
from bench.report import Table, median, ms, percentile
from bot.server import create_api
from taiga.client import TaigaClient, TaigaSession
from taiga.models import TaigaTokens
from tests.peers.fake_anthropic import FakeAnthropic
from tests.peers.fake_taiga import PROJECT_ID
from tests.peers.timed_taiga import TimedTaiga, critical_path

MODEL = "claude-bench"
WEB = "https://taiga.example.test"
API_KEY = "bench-api-key"
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
        "slack_streaming": False,  # the proposal is detected by its chat.update
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
    size: tuple[int, int] = (BIG_STORIES, BIG_TASKS),
) -> Proposal:
    fake_anthropic.script(plan_turn(*size, prefix=prefix))
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


def _check_size(proposal: Proposal, stories: int = BIG_STORIES, tasks: int = BIG_TASKS) -> None:
    made = sum(len(s.tasks) for s in proposal.stories)
    if len(proposal.stories) != stories or made != stories * tasks:
        raise RuntimeError(
            f"propose returned {len(proposal.stories)} stories / {made} tasks "
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
                                _check_size(proposal)
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
                    if latency and sprint == EXISTING_SPRINT:
                        table.metric("propose_ms_20x5", wall * 1000, "ms")
                        table.metric("propose_depth", max(depths), "round trips")
    assert proposal is not None
    table.metric("model_calls_per_plan", proposal.usage.model_calls, "calls")
    table.metric("tool_calls_per_plan", proposal.usage.tool_calls, "calls")
    table.notes = [
        "prefetch: from the call until Taiga answered its last read; rest: the model call "
        "and recording the 20 tool calls.",
        "Taiga reqs: all requests during propose (all are prefetch: the model's turn holds only "
        "writes, which are recorded, not sent).",
        "depth: Taiga round trips on the critical path, from server-side overlaps (shown only "
        "with latency): project first, then sprints and sprint stories concurrently.",
    ]
    return table


async def make_plan(stories: int, tasks: int) -> Proposal:
    """A plan of `stories` x `tasks` into a new sprint, proposed by the real loop at 0 ms."""
    with FakeAnthropic() as fake_anthropic, running_taiga(0.0) as taiga:
        async with (
            AsyncAnthropic(
                api_key="bench", base_url=fake_anthropic.base_url, max_retries=0
            ) as anthropic,
            TaigaClient(taiga.api_url) as client,
        ):
            proposal = await _propose(
                anthropic, fake_anthropic, _alice(client, taiga), NEW_SPRINT, "apply",
                size=(stories, tasks),
            )
    _check_size(proposal, stories, tasks)
    return proposal


# --------------------------------------------------------------------------- 3. /agent/run


async def bench_agent_run(latencies: Sequence[float], runs: int) -> Table:
    table = Table(
        f"3. POST /agent/run end to end: 3 stories x 3 tasks into {EXISTING_SPRINT} "
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
                        fake_anthropic.script(plan_turn(3, 3, prefix=uuid.uuid4().hex[:10]))
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
        if latency:
            table.metric("agent_run_depth_3x3", max(depths), "round trips")
            table.metric("agent_run_p50_ms_3x3", percentile(walls, 50) * 1000, "ms")
    table.notes = [
        "Taiga reqs/run: GET project and GET users/me (who sends the writes) at once, then "
        "sprints and the project's stories at once, then 3 story POSTs, then 9 task POSTs.",
        "depth: the floor of 4 round trips (project | users/me -> sprints | stories -> "
        "3 stories -> 9 tasks); before, users/me came after planning: 6 or more.",
    ]
    return table
