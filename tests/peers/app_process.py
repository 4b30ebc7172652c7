"""The app as its own process: `uvicorn bot.server:api` on a loopback port, configured through
its environment to talk to the fake Slack, Anthropic and Taiga peers of the test process.

    env = app_env(fake_slack, fake_taiga, fake_anthropic, database_url=url, key=key)
    async with served_apps(env, tmp_path, count=2) as (a, b):   # started and healthy
        await a.post_payload(payload)                           # signed like Slack signs
        a.kill()                                                # SIGKILL, as in a crash
        await a.restart()
    # every process is stopped (or killed) on the way out

A process that does not come up within `START_WAIT` fails the test with the end of its log.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import anyio
import httpx

from tests.peers.fake_anthropic import FakeAnthropic
from tests.peers.fake_slack import FakeSlack
from tests.peers.fake_taiga import FakeTaiga
from tests.peers.ports import free_port
from tests.peers.slack_harness import SIGNING_SECRET, signed_headers

ROOT = Path(__file__).resolve().parents[2]
START_WAIT = 60.0  # generous: a loaded machine imports slowly
STOP_WAIT = 10.0
WEB_URL = "https://taiga.example.test"
# Short enough that a test sees a dead run taken over within seconds.
TEST_LEASE = {"PLAN_LEASE_SECONDS": "5", "PLAN_HEARTBEAT_SECONDS": "0.5"}
_OURS = ("SLACK_", "ANTHROPIC_", "TAIGA_", "AGENT_", "PLAN_", "MAX_MINUTES")


def app_env(
    fake_slack: FakeSlack,
    fake_taiga: FakeTaiga,
    fake_anthropic: FakeAnthropic,
    *,
    database_url: str,
    key: str,
    **settings: str,
) -> dict[str, str]:
    """The process environment: the peers' URLs, the database, a Fernet key, the test lease,
    progress in a status message updated in place (as in `slack_harness`), and `settings`
    (NAME=value) on top; none of the test runner's own settings leak in."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(_OURS)
        and name not in {"DATABASE_URL", "TOKEN_ENCRYPTION_KEYS", "PORT"}
    }
    env.update(
        PYTHONPATH=str(ROOT),
        SLACK_BOT_TOKEN=fake_slack.bot_token,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=fake_slack.api_url,
        ANTHROPIC_API_KEY="test-key",
        ANTHROPIC_BASE_URL=fake_anthropic.base_url,
        TAIGA_API_URL=fake_taiga.api_url,
        TAIGA_WEB_URL=WEB_URL,
        DATABASE_URL=database_url,
        TOKEN_ENCRYPTION_KEYS=key,
        SLACK_STREAMING="false",
        **TEST_LEASE,
    )
    env.update(settings)
    return env



class AppProcess:
    """One `uvicorn bot.server:api` process; its output goes to `<folder>/<name>.log`."""

    def __init__(self, env: Mapping[str, str], folder: Path, name: str) -> None:
        self.env = dict(env)
        self.folder = folder
        self.name = name
        self.port = free_port()
        self.log = folder / f"{name}.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._spawn()
        await self._wait_healthy()

    def _spawn(self) -> None:
        command = [
            sys.executable, "-m", "uvicorn", "bot.server:api",
            "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning",
        ]  # fmt: skip
        with self.log.open("ab") as log:
            self._process = subprocess.Popen(
                command, env=self.env, cwd=self.folder, stdout=log, stderr=subprocess.STDOUT
            )

    async def _wait_healthy(self) -> None:
        deadline = time.monotonic() + START_WAIT
        async with httpx.AsyncClient(base_url=self.url, timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self._process is not None and self._process.poll() is not None:
                    raise RuntimeError(f"{self.name} exited at start-up:\n{self.log_tail()}")
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get("/health")).status_code == 200:
                        return
                await anyio.sleep(0.1)
        raise TimeoutError(f"{self.name} was not healthy within {START_WAIT}s:\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown, no cleanup, mid-work, as a crash or an OOM kill leaves it."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGKILL)
            self._process.wait(STOP_WAIT)

    def stop(self) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        self._process.terminate()
        try:
            self._process.wait(STOP_WAIT)
        except subprocess.TimeoutExpired:
            self.kill()

    async def restart(self) -> None:
        self.stop()
        await self.start()

    def log_tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    # --- Slack's requests, signed

    async def post_slack(self, body: str, content_type: str) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.url, timeout=START_WAIT) as client:
            headers = signed_headers(body, content_type=content_type)
            return await client.post("/slack/events", content=body.encode(), headers=headers)

    async def post_payload(self, payload: dict[str, Any]) -> httpx.Response:
        body = urlencode({"payload": json.dumps(payload)})
        return await self.post_slack(body, "application/x-www-form-urlencoded")

    async def post_command(self, form: dict[str, str]) -> httpx.Response:
        return await self.post_slack(urlencode(form), "application/x-www-form-urlencoded")


@asynccontextmanager
async def served_apps(
    env: Mapping[str, str], folder: Path, *, count: int = 1
) -> AsyncIterator[list[AppProcess]]:
    """`count` app processes on one configuration, started and healthy; stopped on exit."""
    apps = [AppProcess(env, folder, f"app-{n}") for n in range(count)]
    try:
        async with anyio.create_task_group() as group:
            for app in apps:
                group.start_soon(app.start)
        yield apps
    finally:
        for app in apps:
            app.stop()
