"""Database fixtures: a temp-file SQLite database and an isolated PostgreSQL schema.

- `database_url`: an EMPTY database's URL, parametrized over sqlite and postgresql.
- `database`: a migrated `Database` on that URL (both backends).
- `sqlite_database`: a migrated `Database` on a temp-file SQLite only (fast; for tests that
  do not care about the backend).
- `cipher`: a `TokenCipher` with one fresh key.

PostgreSQL reads TEST_DATABASE_URL (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test)
and is skipped, with that reason shown, only when it is unset. Each test gets its own schema
(via libpq `options=-csearch_path=...`), dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from storage.crypto import TokenCipher, generate_key
from storage.db import Database

TEST_DATABASE_URL_ENV = "TEST_DATABASE_URL"


@pytest.fixture
def cipher() -> TokenCipher:
    return TokenCipher([generate_key()])


def _postgres_schema_url(base_url: str, schema: str) -> str:
    url = make_url(base_url)
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    return url.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
        hide_password=False
    )


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """An empty, private PostgreSQL schema for this test (dropped afterwards)."""
    base_url = os.environ.get(TEST_DATABASE_URL_ENV)
    if not base_url:
        pytest.skip(f"{TEST_DATABASE_URL_ENV} is not set; PostgreSQL storage tests need it")
    schema = f"test_{uuid.uuid4().hex[:16]}"
    admin = sa.create_engine(_postgres_schema_url(base_url, "public"))
    try:
        with admin.begin() as connection:
            connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        yield _postgres_schema_url(base_url, schema)
    finally:
        with admin.begin() as connection:
            connection.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'taiga_planner.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    """An empty database's URL on each backend."""
    name = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return str(request.getfixturevalue(name))


def _migrated(url: str) -> Iterator[Database]:
    db = Database(url)
    try:
        db.migrate()
        yield db
    finally:
        db.dispose()


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    """A migrated Database, once on SQLite (temp file) and once on PostgreSQL."""
    yield from _migrated(database_url)


@pytest.fixture
def sqlite_database(sqlite_url: str) -> Iterator[Database]:
    """A migrated Database on a temp-file SQLite only."""
    yield from _migrated(sqlite_url)
