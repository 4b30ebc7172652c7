"""`GET /health`: ok only when the database is at the schema this code needs; 503 with the
reason otherwise. The Socket Mode state is checked against the real processes in
test_startup.py (`"slack": "socket connected"`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from agent.runtime import build_runtime
from agent.settings import Settings
from bot.server import create_api
from storage.db import Database, head_revision, upgrade


@asynccontextmanager
async def health_of(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """The API-only app (no Slack settings) on `database_url`, as the caller prepared it."""
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, database_url=database_url, agent_api_keys=["key"],
        anthropic_api_key="test", slack_bot_token="", slack_app_token="", slack_signing_secret="",
    )
    runtime = build_runtime(settings)
    transport = httpx.ASGITransport(app=create_api(runtime=runtime))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
            yield http
    finally:
        await runtime.aclose()


@pytest.mark.anyio
async def test_health_is_503_before_migration_and_ok_after(database_url: str) -> None:
    async with health_of(database_url) as http:
        before = await http.get("/health")
        database = Database(database_url)
        database.migrate()
        database.dispose()
        after = await http.get("/health")

    assert before.status_code == 503
    assert before.json()["database"] == "not migrated"
    assert "python -m bot migrate" in before.json()["reason"]
    assert after.status_code == 200
    assert after.json() == {
        "status": "ok", "database": "ok", "schema_revision": head_revision(),
        "schema_head": head_revision(), "slack": "off", "reason": None,
    }


@pytest.mark.anyio
async def test_health_says_which_revision_a_database_behind_the_code_is_at(
    sqlite_url: str,
) -> None:
    engine = sa.create_engine(sqlite_url)
    with engine.connect() as connection:
        upgrade(connection, "0001")
    engine.dispose()

    async with health_of(sqlite_url) as http:
        response = await http.get("/health")

    assert response.status_code == 503
    assert response.json()["database"] == "behind"
    assert f"at 0001, this version needs {head_revision()}" in response.json()["reason"]


@pytest.mark.anyio
async def test_health_is_503_when_the_database_is_unreachable(tmp_path: Path) -> None:
    async with health_of(f"sqlite:///{tmp_path}/missing/dir/db.sqlite") as http:
        response = await http.get("/health")

    assert response.status_code == 503
    assert response.json()["database"] == "unreachable"
    assert response.json()["reason"].startswith("the database is unreachable: unable to open")
