"""The database: a sync SQLAlchemy engine used from worker threads, so the event loop never blocks.

SQLite (default) runs in WAL mode with a busy timeout and foreign keys on; every transaction
starts with `BEGIN IMMEDIATE`, so writers queue on the busy timeout instead of failing when a
read transaction upgrades to a write. PostgreSQL goes through psycopg with `pool_pre_ping`.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from functools import cache, partial
from pathlib import Path
from typing import Any, Final, TypeVar

import anyio
import anyio.to_thread
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool
from sqlmodel import Session

T = TypeVar("T")

DEFAULT_URL: Final = "sqlite:///./taiga_planner.db"
MIGRATIONS_DIR: Final = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS: Final = 30_000
# Any constant works; it keeps replicas that start together from migrating at the same time.
_MIGRATION_LOCK_ID: Final = 0x7A16A_91A
_DEFERRED: Final = "storage_deferred_begin"
# Alembic keeps the running migration in module globals (`alembic.context`), so within one
# process only one migration may run at a time, whatever database it targets.
_ALEMBIC_LOCK: Final = threading.Lock()


def _is_memory_sqlite(url: URL) -> bool:
    database = url.database or ""
    return (
        database in ("", ":memory:")
        or "mode=memory" in database
        or (url.query.get("mode") == "memory")
    )


def _sqlite_on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    # pysqlite's own transaction handling gets in the way of SAVEPOINT and BEGIN IMMEDIATE;
    # turn it off and emit BEGIN ourselves (see `_sqlite_on_begin`).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        _enable_wal(cursor)
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _enable_wal(cursor: Any) -> None:
    """Switch the file to WAL (persistent, so usually already done).

    A connection that finds another one switching the same new file at the same moment gets
    "database is locked" at once (SQLite skips the busy handler there to avoid a deadlock), so
    retry within the busy timeout.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            if cursor.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
                return
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _sqlite_on_begin(conn: Connection) -> None:
    deferred = conn.get_execution_options().get(_DEFERRED, False)
    conn.exec_driver_sql("BEGIN" if deferred else "BEGIN IMMEDIATE")


def _sqlite_pragma(connection: Connection, pragma: str) -> None:
    """Run a PRAGMA outside any transaction (some, like foreign_keys, are ignored inside one)."""
    driver_connection = connection.connection.driver_connection
    assert driver_connection is not None
    driver_connection.execute(f"PRAGMA {pragma}")


def _check_sqlite_foreign_keys(connection: Connection) -> None:
    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
    if broken:
        tables = sorted({str(row[0]) for row in broken})
        raise RuntimeError(f"migration left rows with broken foreign keys in {tables}")


def _build_engine(url: URL) -> Engine:
    if url.get_backend_name() == "sqlite":
        kwargs: dict[str, Any] = {
            "connect_args": {"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
        }
        if _is_memory_sqlite(url):
            # One shared connection, so every worker thread sees the same in-memory database;
            # `Database` serialises its use with a lock.
            kwargs["poolclass"] = StaticPool
        engine = sa.create_engine(url, **kwargs)
        sa.event.listen(engine, "connect", _sqlite_on_connect)
        sa.event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    if url.get_backend_name() == "postgresql":
        connect_args: dict[str, Any] = {}
        if "connect_timeout" not in url.query:
            connect_args["connect_timeout"] = 10
        return sa.create_engine(url, pool_pre_ping=True, connect_args=connect_args)
    raise ValueError(
        f"DATABASE_URL must be sqlite:/// or postgresql+psycopg://, not {url.get_backend_name()}"
    )


class Database:
    """Owns the engine. Use `await db.run(fn)` from async code; `fn(session)` runs in a thread."""

    def __init__(self, url: str = DEFAULT_URL, *, ping_timeout: float = 5.0) -> None:
        self.url: URL = make_url(url)
        self.ping_timeout = ping_timeout
        self.engine: Engine = _build_engine(self.url)
        self.dialect: str = self.engine.dialect.name
        # An in-memory SQLite database is one connection; only one thread may use it at a time.
        self._memory_lock = (
            threading.Lock() if (self.dialect == "sqlite" and _is_memory_sqlite(self.url)) else None
        )

    def __repr__(self) -> str:
        return f"Database({self.url.render_as_string(hide_password=True)!r})"

    def _exclusive(self) -> threading.Lock | nullcontext[None]:
        return self._memory_lock if self._memory_lock is not None else nullcontext()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session inside one transaction: committed on success, rolled back on error (sync)."""
        with self._exclusive(), Session(self.engine, expire_on_commit=False) as session:
            with session.begin():
                yield session

    def run_sync(self, fn: Callable[[Session], T]) -> T:
        with self.session() as session:
            return fn(session)

    async def run(self, fn: Callable[[Session], T]) -> T:
        """Run `fn(session)` in a worker thread inside one transaction, then commit."""
        return await anyio.to_thread.run_sync(partial(self.run_sync, fn))

    def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision (`alembic upgrade head`)."""
        with self._exclusive(), self.engine.connect() as connection:
            upgrade(connection)

    def _revision_sync(self) -> str | None:
        with self._exclusive(), self.engine.connect() as connection:
            connection = connection.execution_options(**{_DEFERRED: True})
            try:
                query = sa.text("SELECT version_num FROM alembic_version")
                return connection.execute(query).scalar()
            except sa.exc.DBAPIError:  # connected, but never migrated
                return None

    async def schema_revision(self) -> str | None:
        """The Alembic revision the schema is at (None: never migrated), read within
        `ping_timeout` seconds. Raises `DatabaseUnreachable` when the database does not answer."""
        with anyio.move_on_after(self.ping_timeout):
            try:
                return await anyio.to_thread.run_sync(self._revision_sync, abandon_on_cancel=True)
            except sa.exc.DBAPIError as error:
                raise DatabaseUnreachable(str(error.orig).strip().splitlines()[0]) from error
        raise DatabaseUnreachable(f"no answer within {self.ping_timeout:g} s")

    def dispose(self) -> None:
        self.engine.dispose()


class DatabaseUnreachable(Exception):
    """The database did not answer; the message says why, in one line."""


@cache
def head_revision() -> str | None:
    """The newest Alembic revision this code knows (what `migrate` upgrades to)."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


@cache
def known_revisions() -> frozenset[str]:
    """Every Alembic revision this code knows: a database at another one is ahead of it."""
    scripts = ScriptDirectory.from_config(alembic_config()).walk_revisions()
    return frozenset(script.revision for script in scripts)


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config pointing at `storage/migrations`, no alembic.ini needed."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(
    connection: Connection, revision: str = "head", *, config: Config | None = None
) -> None:
    """Run Alembic `upgrade` on a connection that is not in a transaction yet.

    Safe to call from several replicas at once: PostgreSQL takes an advisory lock, SQLite's
    `BEGIN IMMEDIATE` admits one migrator. On SQLite, foreign keys are off while migrating
    (a batch migration recreates tables, and dropping a parent would cascade) and are checked
    before the commit.
    """
    config = config or alembic_config()
    config.attributes["connection"] = connection
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        _sqlite_pragma(connection, "foreign_keys = OFF")
    try:
        with connection.begin():
            if connection.dialect.name == "postgresql":
                connection.execute(
                    sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK_ID}
                )
            with _ALEMBIC_LOCK:
                command.upgrade(config, revision)
            if sqlite:
                _check_sqlite_foreign_keys(connection)
    finally:
        if sqlite:
            _sqlite_pragma(connection, "foreign_keys = ON")
