"""The MCP server run the way clients run it, driven by the `mcp` SDK's own client.

- `mcp_env`: the server's environment pointed at the fake Anthropic and fake Taiga (Alice's
  password, a temp-file SQLite database), for a process started from an empty folder.
- `stdio_session(env)`: `python -m agent mcp` started by the SDK's stdio client.
- `mcp_http` fixture: `python -m agent mcp --http --port N` as a process; `http_session(url,
  token)` connects the SDK's streamable HTTP client with that Taiga token.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.session import ElicitationFnT
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from tests.peers.fake_anthropic import FakeAnthropic
from tests.peers.fake_taiga import PASSWORDS, FakeTaiga
from tests.peers.ports import free_port

REPO = Path(__file__).resolve().parents[2]
WEB = "https://taiga.example"
START_TIMEOUT = 60.0


@pytest.fixture
def mcp_env(tmp_path: Path, fake_anthropic: FakeAnthropic, fake_taiga: FakeTaiga) -> dict[str, str]:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("TAIGA_", "AGENT_"))}
    return {
        **inherited,
        "PYTHONPATH": str(REPO),
        "ANTHROPIC_API_KEY": "test-key",
        "ANTHROPIC_BASE_URL": fake_anthropic.base_url,
        "TAIGA_API_URL": fake_taiga.api_url,
        "TAIGA_WEB_URL": WEB,
        "TAIGA_USERNAME": "alice",
        "TAIGA_PASSWORD": PASSWORDS["alice"],
        "DATABASE_URL": f"sqlite:///{tmp_path / 'planner.db'}",
    }


@asynccontextmanager
async def stdio_session(
    env: dict[str, str], *, elicitation: ElicitationFnT | None = None
) -> AsyncIterator[ClientSession]:
    server = StdioServerParameters(
        command=sys.executable, args=["-m", "agent", "mcp"], env=env, cwd=_empty_dir(env)
    )
    async with (
        stdio_client(server) as (read, write),
        ClientSession(read, write, elicitation_callback=elicitation) as session,
    ):
        await session.initialize()
        yield session


@asynccontextmanager
async def http_session(
    url: str, token: str, *, refresh: str | None = None
) -> AsyncIterator[ClientSession]:
    headers = {"Authorization": f"Bearer {token}"}
    if refresh:
        headers["X-Taiga-Refresh-Token"] = refresh
    async with (
        create_mcp_http_client(headers=headers) as http,
        streamable_http_client(url, http_client=http) as (read, write, _),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


@pytest.fixture
def mcp_http(mcp_env: dict[str, str]) -> Iterator[str]:
    """The URL of `python -m agent mcp --http` on a free loopback port (stopped afterwards)."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "agent", "mcp", "--http", "--port", str(port)],
        env=mcp_env,
        cwd=_empty_dir(mcp_env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr:
            process.stderr.close()


def structured(result: Any) -> dict[str, Any]:
    """A tool result's JSON object (failing the test, with the sentence, on a tool error)."""
    assert not result.isError, result.content[0].text
    assert result.structuredContent is not None
    return dict(result.structuredContent)


def _empty_dir(env: dict[str, str]) -> str:
    """The folder of the test's database: empty but for it, so no stray .env is read."""
    return str(Path(env["DATABASE_URL"].removeprefix("sqlite:///")).parent)



def _wait_for_port(port: int, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            said = process.stderr.read() if process.stderr else ""
            raise AssertionError(f"the MCP server exited: {said}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"the MCP server did not listen on port {port}")
