"""The deployed shape, measured: `uvicorn bot.server:api` as a subprocess, with the fake Slack,
Taiga and Anthropic in this process.

In order: start-up (process start until `/health` answers) and idle memory; `plans` signed
`/taiga plan` at once, each waiting on a model turn of `model_delay` s (wall time until every
proposal is shown, and the process's peak memory); then a burst of `burst` signed `/taiga plan`
from as many users, `concurrency` at a time, while those plans wait on the model: the time until
each HTTP answer (Slack gives up after 3 s). Last, the same burst against the straightforward
design (`baseline_app.py`), for comparison on the same machine at the same moment.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlencode

import httpx
from sqlmodel import Session

from bench.peers import has_button, minutes, plan_turn, running_taiga, signed_headers, slow
from bench.report import Table, ms, percentile
from storage import repositories as repo
from storage.crypto import TokenCipher, generate_key
from storage.db import Database
from tests.peers.fake_anthropic import FakeAnthropic
from tests.peers.fake_slack import FakeSlack
from tests.peers.fake_taiga import PROJECT_ID, PROJECT_SLUG
from tests.peers.ports import free_port
from tests.peers.timed_taiga import TimedTaiga

SIGNING_SECRET = "bench-signing-secret-0123456789ab"
BASELINE_APP = "bench.baseline_app:api"
ROOT = Path(__file__).resolve().parents[1]
# Servers started and not yet stopped: the bench's watchdog kills them before it exits.
RUNNING: set[subprocess.Popen[bytes]] = set()
SPRINT = "Sprint 6"
PLAN = f"plan {SPRINT}\n{minutes(10)}"
STARTUP_LIMIT = 30.0
BURST_SHOWN_LIMIT = 30.0
# Our settings' variables: the server must see only the ones the bench sets.
OUR_PREFIXES = ("SLACK_", "TAIGA_", "ANTHROPIC_", "AGENT_", "PLAN_", "DATABASE_URL",
                "TOKEN_ENCRYPTION_KEYS", "MAX_")  # fmt: skip
# The limits that protect a deployment (8 requests worked on at once, 10 drafts per workspace)
# would make the burst measure the queue; the bench lifts them to measure the process itself.
UNLIMITED = "1000"



def _memory_mb(pid: int, field: str) -> float:
    """VmRSS (now) or VmHWM (peak) of a process, in MB (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/{pid}/status")


def _link_everyone(db: Database, cipher: TokenCipher, slack: FakeSlack, taiga: TimedTaiga,
                   users: list[str], channel: str) -> None:  # fmt: skip
    tokens = taiga.login_tokens("alice")
    alice = taiga.user("alice").id

    def store(session: Session) -> None:
        for user in users:
            repo.save_link(
                session, cipher=cipher, team_id=slack.team_id, user_id=user, taiga_user_id=alice,
                taiga_username="alice",
                tokens=repo.StoredTokens(tokens["auth_token"], tokens["refresh"]),
            )  # fmt: skip
        repo.set_channel_project(
            session, team_id=slack.team_id, channel_id=channel, project_id=PROJECT_ID,
            project_slug=PROJECT_SLUG, project_name="Peer Client Test", set_by=users[0],
        )  # fmt: skip

    db.run_sync(store)


@contextmanager
def _server(
    env: dict[str, str], workdir: Path, app: str = "bot.server:api"
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    log = (workdir / f"{app}.log").open("wb")
    command = [sys.executable, "-m", "uvicorn", app, "--app-dir", str(ROOT), "--host", "127.0.0.1",
               "--port", str(port), "--log-level", "warning", "--no-access-log"]  # fmt: skip
    process = subprocess.Popen(command, env=env, cwd=workdir, stdout=log, stderr=log)
    RUNNING.add(process)
    try:
        yield process, f"http://127.0.0.1:{port}"
    finally:
        RUNNING.discard(process)
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        log.close()


async def _until_healthy(
    http: httpx.AsyncClient, url: str, process: subprocess.Popen[bytes]
) -> None:
    deadline = time.perf_counter() + STARTUP_LIMIT
    while time.perf_counter() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with status {process.returncode}")
        try:
            if (await http.get(url + "/health", timeout=1.0)).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.01)
    raise RuntimeError(f"/health did not answer within {STARTUP_LIMIT:g} s")


class Load:
    """Signed `/taiga plan` requests to the server, and waiting for their proposals."""

    def __init__(self, slack: FakeSlack, http: httpx.AsyncClient, url: str, channel: str) -> None:
        self.slack, self.http, self.url, self.channel = slack, http, url, channel
        self.sent = 0

    async def plan(self, user: str, text: str = PLAN) -> float:
        """Send one `/taiga <text>`; the seconds until its HTTP answer."""
        form = self.slack.slash_command_form("/taiga", text, user=user, channel=self.channel)
        body = urlencode(form)
        started = time.perf_counter()
        response = await self.http.post(
            self.url + "/slack/events", content=body.encode(),
            headers=signed_headers(body, SIGNING_SECRET),
        )  # fmt: skip
        took = time.perf_counter() - started
        if response.status_code != 200:
            raise RuntimeError(f"/slack/events answered {response.status_code}")
        self.sent += text == PLAN
        return took

    async def burst(self, users: list[str], concurrency: int, text: str = PLAN) -> list[float]:
        """One `/taiga <text>` from each user, `concurrency` at a time; the seconds of each ack."""
        gate = asyncio.Semaphore(concurrency)

        async def paced(user: str) -> float:
            async with gate:
                return await self.plan(user, text)

        return list(await asyncio.gather(*(paced(user) for user in users)))

    async def all_shown(self, within: float) -> None:
        await self.slack.wait_for(
            "chat.update", lambda c: c.ok and has_button(c.params, "plan_approve"),
            count=self.sent, within=within,
        )  # fmt: skip


async def bench_server(burst: int, concurrency: int, plans: int, model_delay: float) -> Table:
    table = Table(
        f"4. uvicorn bot.server:api as a subprocess: start-up, {plans} plans at once, a burst "
        f"of {burst} '/taiga plan' ({concurrency} at a time); model turns take "
        f"{model_delay * 1000:g} ms",
        ["measure", "value"],
    )
    slack = FakeSlack()
    await asyncio.to_thread(slack.start)
    try:
        with (
            FakeAnthropic() as anthropic,
            running_taiga(0.0) as taiga,
            tempfile.TemporaryDirectory(prefix="taiga-planner-bench-") as tmp,
        ):
            await _measure(table, slack, anthropic, taiga, Path(tmp),
                           burst=burst, concurrency=concurrency, plans=plans,
                           model_delay=model_delay)  # fmt: skip
    finally:
        await asyncio.to_thread(slack.stop)
    return table


def _env(slack: FakeSlack, anthropic: FakeAnthropic, taiga: TimedTaiga, db_url: str,
         key: str) -> dict[str, str]:  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(OUR_PREFIXES)}
    return env | {
        "SLACK_BOT_TOKEN": slack.bot_token,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.api_url,
        "TAIGA_API_URL": taiga.api_url,
        "TAIGA_WEB_URL": "https://taiga.example.test",
        "ANTHROPIC_API_KEY": "bench",
        "ANTHROPIC_BASE_URL": anthropic.base_url,
        "DATABASE_URL": db_url,
        "TOKEN_ENCRYPTION_KEYS": key,
        "SLACK_STREAMING": "false",  # proposals are spotted by their chat.update
        "MAX_CONCURRENT_WORK": UNLIMITED,
        "MAX_QUEUED_WORK": UNLIMITED,
        "MAX_DRAFTING_PLANS_PER_WORKSPACE": UNLIMITED,
    }


async def _measure(table: Table, slack: FakeSlack, anthropic: FakeAnthropic, taiga: TimedTaiga,
                   workdir: Path, *, burst: int, concurrency: int, plans: int,
                   model_delay: float) -> None:  # fmt: skip
    db_url = f"sqlite:///{workdir / 'bench.db'}"
    key = generate_key()
    db = Database(db_url)
    db.migrate()
    channel = slack.add_channel("planning")
    users = [slack.add_user(f"Bench User {n}", display_name=f"bench{n}") for n in range(burst)]
    _link_everyone(db, TokenCipher([key]), slack, taiga, users, channel)
    db.dispose()
    env = _env(slack, anthropic, taiga, db_url, key)
    # A new connection per request, as from Slack's many senders.
    limits = httpx.Limits(max_connections=max(concurrency, plans), max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=30.0, limits=limits) as http:
        started = time.perf_counter()
        with _server(env, workdir) as (process, url):
            await _until_healthy(http, url, process)
            startup = time.perf_counter() - started
            await asyncio.sleep(1.0)  # let start-up work (auth.test, the recovery sweep) settle
            idle = _memory_mb(process.pid, "VmRSS")
            load = Load(slack, http, url, channel)

            anthropic.script(*(slow(plan_turn(2, 2, prefix=f"at once {i}"), model_delay)
                               for i in range(plans)))  # fmt: skip
            t0 = time.perf_counter()
            await asyncio.gather(*(load.plan(user) for user in users[:plans]))
            await load.all_shown(within=60.0)
            wall = time.perf_counter() - t0
            peak = _memory_mb(process.pid, "VmHWM")

            anthropic.script(*(slow(plan_turn(2, 2, prefix=f"burst {i}"), model_delay)
                               for i in range(burst)))  # fmt: skip
            t0 = time.perf_counter()
            acks = await load.burst(users, concurrency)
            # Let those plans finish before the server stops (bounded; a slow machine may not).
            with contextlib.suppress(TimeoutError):
                await load.all_shown(within=BURST_SHOWN_LIMIT)
            burst_shown = time.perf_counter() - t0
            after_burst = _memory_mb(process.pid, "VmHWM")
            helps = await load.burst(users, concurrency, "help")
        with _server(env, workdir, BASELINE_APP) as (process, url):
            await _until_healthy(http, url, process)
            baseline = await Load(slack, http, url, channel).burst(users, concurrency)

    table.add("start-up: process start until /health answers", f"{startup:.2f} s")
    table.add("idle memory (RSS) after start-up", f"{idle:.0f} MB")
    table.add(f"{plans} plans at once: until every proposal is shown", f"{wall:.2f} s")
    table.add(f"peak memory (RSS) with {plans} plans drafting", f"{peak:.0f} MB")
    table.add(f"ack p50 ({burst} requests)", ms(percentile(acks, 50)))
    table.add("ack p99", ms(percentile(acks, 99)))
    table.add("ack max", ms(max(acks)))
    table.add(f"the burst's {burst} proposals shown after", f"{burst_shown:.1f} s")
    table.add(f"peak memory (RSS) after the burst of {burst}", f"{after_burst:.0f} MB")
    table.add(f"'/taiga help' burst of {burst}, nothing drafting: ack p50",
              ms(percentile(helps, 50)))  # fmt: skip
    table.add("'/taiga help': ack p99", ms(percentile(helps, 99)))
    table.add("baseline (a Bolt app that only acks): ack p50", ms(percentile(baseline, 50)))
    table.add("baseline: ack p99", ms(percentile(baseline, 99)))
    table.metric("startup_s", startup, "s")
    table.metric("idle_rss_mb", idle, "MB")
    table.metric("concurrent_plans_wall_s", wall, "s")
    table.metric("peak_rss_mb", peak, "MB")
    table.metric("ack_p50_ms", percentile(acks, 50) * 1000, "ms")
    table.metric("ack_p99_ms", percentile(acks, 99) * 1000, "ms")
    table.metric("ack_max_ms", max(acks) * 1000, "ms")
    table.metric("burst_peak_rss_mb", after_burst, "MB")
    table.metric("burst_all_shown_s", burst_shown, "s")
    table.metric("ack_help_p50_ms", percentile(helps, 50) * 1000, "ms")
    table.metric("ack_help_p99_ms", percentile(helps, 99) * 1000, "ms")
    table.metric("ack_baseline_p50_ms", percentile(baseline, 50) * 1000, "ms")
    table.metric("ack_baseline_p99_ms", percentile(baseline, 99) * 1000, "ms")
    table.notes = [
        "ack: from sending the signed request until its HTTP answer, measured by this process "
        "(which also runs the fake Slack, Taiga and Anthropic, so it competes for the CPU).",
        f"plans at once: all {plans} sent together; until the last proposal's Approve button "
        f"is shown (the floor is one model turn, {model_delay:g} s).",
        "'/taiga help': answered inline, nothing started; sent once the burst's plans are "
        "shown: our ack path alone, to compare with the baseline.",
        "baseline: the same burst against bench/baseline_app.py, a Bolt app whose listener "
        "only acks (the straightforward design), started the same way right after ours.",
    ]
