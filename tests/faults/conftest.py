"""Fixtures of the reliability catalogue: `served` (the harness with its app behind uvicorn on
loopback), `watch` (failures logged or left to the event loop while a test runs) and `world`
(app processes on one database: SQLite unless a module's `world_database_url` says otherwise)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.faults.hostile import Watch
from tests.faults.world import World, make_world
from tests.peers.fake_anthropic import FakeAnthropic
from tests.peers.fake_slack import FakeSlack
from tests.peers.fake_taiga import FakeTaiga
from tests.peers.served import serving
from tests.peers.slack_harness import Harness


@pytest.fixture
async def served(h: Harness) -> AsyncIterator[Harness]:
    """The harness, its requests sent over HTTP to the app served by uvicorn on loopback."""
    async with serving(h.api) as base_url, httpx.AsyncClient(
        base_url=base_url, timeout=30.0
    ) as http:
        yield dataclasses.replace(h, http=http)


@pytest.fixture
async def watch() -> AsyncIterator[Watch]:
    watcher = Watch()
    root = logging.getLogger()
    root.addHandler(watcher)
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: watcher.unhandled.append(context))
    try:
        yield watcher
    finally:
        loop.set_exception_handler(previous)
        root.removeHandler(watcher)


@pytest.fixture
def world_database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'planner.db'}"


@pytest.fixture
async def world(
    tmp_path: Path, fake_slack: FakeSlack, fake_taiga: FakeTaiga, fake_anthropic: FakeAnthropic,
    world_database_url: str,
) -> AsyncIterator[World]:
    built = await make_world(tmp_path, fake_slack, fake_taiga, fake_anthropic, world_database_url)
    try:
        yield built
    finally:
        built.db.dispose()
