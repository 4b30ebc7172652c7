from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import anyio
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlmodel import Session, SQLModel, select

from storage import plan_states, repositories
from storage.db import (
    MIGRATIONS_DIR,
    Database,
    DatabaseUnreachable,
    alembic_config,
    head_revision,
    upgrade,
)
from storage.models import Plan, SlackEvent

TABLES = {
    "taiga_link", "channel_project", "plan", "plan_revision", "write_ledger", "slack_event",
    "connect_link",
    "drafting_claim",
}
HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()


def _schema_diffs(db: Database, metadata: sa.MetaData) -> list[object]:
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))


def _plan_fields(**overrides: object) -> dict[str, object]:
    fields: dict[str, object] = {
        "slack_team_id": "T1",
        "slack_channel_id": "C1",
        "slack_thread_ts": "1712345678.000100",
        "project_id": 7,
        "project_slug": "acme-web",
        "target_sprint": "Sprint 6",
        "minutes_digest": "0" * 64,
    }
    fields.update(overrides)
    return fields


def test_migrate_upgrades_an_empty_database_to_head_matching_the_models(
    database_url: str,
) -> None:
    db = Database(database_url)
    try:
        assert TABLES.isdisjoint(sa.inspect(db.engine).get_table_names())

        db.migrate()

        assert set(sa.inspect(db.engine).get_table_names()) >= TABLES | {"alembic_version"}
        with db.engine.connect() as connection:
            version = connection.execute(sa.text("SELECT version_num FROM alembic_version"))
            assert version.scalar_one() == HEAD == "0009"
        assert _schema_diffs(db, SQLModel.metadata) == []
    finally:
        db.dispose()


def test_upgrading_to_0003_keeps_ledger_rows_without_a_recorded_sender(database_url: str) -> None:
    db = Database(database_url)
    try:
        with db.engine.connect() as connection:
            upgrade(connection, "0002")
        with db.engine.begin() as connection:
            _insert_plan_at_0002(connection, "p1")
            connection.execute(
                sa.text(
                    "INSERT INTO write_ledger (plan_id, action_key, state, attempted_at,"
                    " payload_digest) VALUES (:plan, 'milestone', 'pending', :at, :digest)"
                ),
                {"plan": "p1", "at": datetime.now(UTC), "digest": "f" * 64},
            )

        db.migrate()

        ledger = db.run_sync(lambda s: repositories.ledger_for_plan(s, "p1"))
        assert [(e.state, e.actor_taiga_id) for e in ledger.values()] == [("pending", None)]
        columns = {c["name"] for c in sa.inspect(db.engine).get_columns("write_ledger")}
        assert "payload_digest" not in columns and "actor_taiga_id" in columns
    finally:
        db.dispose()


def test_upgrading_to_0004_leaves_existing_plans_unversioned_without_history(
    database_url: str,
) -> None:
    db = Database(database_url)
    try:
        with db.engine.connect() as connection:
            upgrade(connection, "0003")
        with db.engine.begin() as connection:
            _insert_plan_at_0002(connection, "p1")

        db.migrate()

        plan = db.run_sync(lambda s: repositories.get_plan(s, "p1"))
        assert plan is not None and plan.proposal_version == 0
        assert db.run_sync(lambda s: repositories.revisions_of(s, "p1")) == []
    finally:
        db.dispose()


def test_upgrading_to_0007_gives_running_plans_the_old_takeover_age_as_their_lease(
    database_url: str,
) -> None:
    db = Database(database_url)
    try:
        with db.engine.connect() as connection:
            upgrade(connection, "0006")
        with db.engine.begin() as connection:
            _insert_plan_at_0002(connection, "running")
            _insert_plan_at_0002(connection, "waiting")
            connection.execute(sa.text("UPDATE plan SET state = 'executing' WHERE id = 'running'"))

        db.migrate()

        running, waiting = (
            db.run_sync(lambda s, i=plan_id: repositories.get_plan(s, i))
            for plan_id in ("running", "waiting")
        )
        assert running is not None and waiting is not None
        assert running.lease_until is not None
        assert running.lease_until - running.updated_at == timedelta(minutes=15)
        assert (running.lease_owner, waiting.lease_owner, waiting.lease_until) == (None,) * 3
    finally:
        db.dispose()


def _insert_plan_at_0002(connection: sa.Connection, plan_id: str) -> None:
    """A plan row as revisions 0002 and 0003 know it (no later columns)."""
    now = datetime.now(UTC)
    fields = {**_plan_fields(), "id": plan_id, "state": "proposed", "version": 1,
              "created_at": now, "updated_at": now}
    names = ", ".join(fields)
    values = ", ".join(f":{name}" for name in fields)
    connection.execute(sa.text(f"INSERT INTO plan ({names}) VALUES ({values})"), fields)


def test_replicas_migrating_at_once_all_succeed(database_url: str) -> None:
    replicas = [Database(database_url) for _ in range(4)]
    barrier = threading.Barrier(len(replicas))

    def start(db: Database) -> None:
        barrier.wait(timeout=30)
        db.migrate()

    try:
        with ThreadPoolExecutor(max_workers=len(replicas)) as pool:
            list(pool.map(start, replicas))
        assert _schema_diffs(replicas[0], SQLModel.metadata) == []
    finally:
        for db in replicas:
            db.dispose()


def test_migrate_twice_is_a_no_op(database: Database) -> None:
    database.migrate()

    assert _schema_diffs(database, SQLModel.metadata) == []


def test_schema_comparison_notices_a_model_the_migrations_lack(database: Database) -> None:
    metadata = sa.MetaData()
    for table in SQLModel.metadata.tables.values():
        table.to_metadata(metadata)
    sa.Table("not_migrated", metadata, sa.Column("id", sa.Integer, primary_key=True))
    metadata.tables["plan"].append_column(sa.Column("extra", sa.Text))

    diffs = _schema_diffs(database, metadata)

    assert [diff[0] for diff in diffs if isinstance(diff, tuple)] == ["add_table", "add_column"]


def test_downgrade_to_base_removes_every_table(database: Database) -> None:
    with database.engine.begin() as connection:
        command.downgrade(alembic_config(connection), "base")

    assert TABLES.isdisjoint(sa.inspect(database.engine).get_table_names())


@pytest.mark.anyio
async def test_run_executes_in_a_worker_thread_and_commits(database: Database) -> None:
    plan = await database.run(lambda s: repositories.create_plan(s, **_plan_fields()))

    with Session(database.engine) as other:
        stored = other.get(Plan, plan.id)

    assert stored is not None
    assert stored.target_sprint == "Sprint 6"


@pytest.mark.anyio
async def test_run_rolls_back_when_the_function_raises(database: Database) -> None:
    def create_then_fail(session: Session) -> None:
        repositories.create_plan(session, **_plan_fields(id="rolledback"))
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await database.run(create_then_fail)

    assert await database.run(lambda s: repositories.get_plan(s, "rolledback")) is None


@pytest.mark.anyio
async def test_a_live_database_answers_its_schema_revision(database: Database) -> None:
    assert await database.schema_revision() == head_revision()


@pytest.mark.anyio
async def test_a_database_that_cannot_be_reached_is_said_so(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'missing-dir' / 'x.db'}")
    try:
        with pytest.raises(DatabaseUnreachable):
            await db.schema_revision()
    finally:
        db.dispose()


@pytest.mark.anyio
async def test_postgresql_refusing_connections_is_said_so() -> None:
    db = Database("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")
    try:
        with pytest.raises(DatabaseUnreachable):
            await db.schema_revision()
    finally:
        db.dispose()


@pytest.mark.anyio
async def test_in_memory_sqlite_is_shared_by_worker_threads() -> None:
    db = Database("sqlite://")
    try:
        db.migrate()

        async with anyio.create_task_group() as tg:
            for n in range(8):
                tg.start_soon(database_run_first_delivery, db, f"Ev{n}")

        count = await db.run(lambda s: len(s.exec(select(SlackEvent)).all()))
        assert count == 8
        assert await db.schema_revision() == head_revision()
    finally:
        db.dispose()


async def database_run_first_delivery(db: Database, event_id: str) -> None:
    now = datetime.now(UTC)
    assert await db.run(lambda s: repositories.first_delivery(s, event_id=event_id, now=now))


def test_sqlite_connections_use_wal_busy_timeout_and_foreign_keys(
    sqlite_database: Database,
) -> None:
    with sqlite_database.engine.connect() as connection:
        pragma = connection.exec_driver_sql
        assert pragma("PRAGMA journal_mode").scalar_one() == "wal"
        assert pragma("PRAGMA foreign_keys").scalar_one() == 1
        assert pragma("PRAGMA busy_timeout").scalar_one() >= 5000


def test_foreign_key_refuses_a_ledger_row_for_a_missing_plan(database: Database) -> None:
    with pytest.raises(sa.exc.IntegrityError):
        database.run_sync(
            lambda s: repositories.claim_actions(
                s, plan_id="nope", action_keys=["milestone"], now=datetime.now(UTC), actor=6
            )
        )


def test_default_url_is_a_sqlite_file_next_to_the_process() -> None:
    db = Database()
    try:
        assert db.dialect == "sqlite"
        assert db.url.database == "./taiga_planner.db"
    finally:
        db.dispose()


def test_unsupported_url_is_refused_with_the_supported_ones() -> None:
    with pytest.raises(ValueError, match="postgresql\\+psycopg"):
        Database("mysql://localhost/x")


def test_timestamps_round_trip_as_aware_utc(database: Database) -> None:
    plus_two = timezone(timedelta(hours=2))
    created = datetime(2026, 3, 29, 3, 30, 15, 123456, tzinfo=plus_two)
    expires = datetime(2026, 3, 30, 1, 0, tzinfo=UTC)
    plan = database.run_sync(
        lambda s: repositories.create_plan(
            s, **_plan_fields(created_at=created, expires_at=expires)
        )
    )

    stored = database.run_sync(lambda s: repositories.get_plan(s, plan.id))

    assert stored is not None
    assert stored.created_at == created
    assert stored.created_at.tzinfo == UTC
    assert stored.created_at.hour == 1
    assert stored.expires_at == expires
    assert stored.expires_at is not None and stored.expires_at.tzinfo == UTC


def test_timestamps_compare_in_sql_as_instants(database: Database) -> None:
    early = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    database.run_sync(lambda s: repositories.first_delivery(s, event_id="Ev1", now=early))

    later_in_other_zone = datetime(2026, 1, 1, 13, 30, tzinfo=timezone(timedelta(hours=1)))
    pruned = database.run_sync(
        lambda s: repositories.prune_slack_events(s, before=later_in_other_zone)
    )

    assert pruned == 1


def test_naive_datetimes_are_refused(database: Database) -> None:
    with pytest.raises(sa.exc.StatementError, match="naive datetime"):
        database.run_sync(
            lambda s: repositories.first_delivery(
                s,
                event_id="Ev1",
                now=datetime(2026, 1, 1),
            )
        )


def test_plan_states_module_lists_every_plan_state() -> None:
    assert plan_states.PLAN_STATES == {
        "drafting",
        "proposed",
        "approved",
        "executing",
        "done",
        "partial",
        "failed",
        "rejected",
        "expired",
        "undoing",
        "undone",
        "undo_partial",
    }


BATCH_REVISION = f"""
import sqlalchemy as sa
from alembic import op

revision = "0099"
down_revision = "{HEAD}"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("plan", recreate="always") as batch:
        batch.add_column(sa.Column("extra", sa.Text(), nullable=True))


def downgrade():
    with op.batch_alter_table("plan", recreate="always") as batch:
        batch.drop_column("extra")
"""


def test_sqlite_batch_migration_of_a_parent_table_keeps_child_rows(
    sqlite_database: Database, tmp_path: Path
) -> None:
    plan = sqlite_database.run_sync(lambda s: repositories.create_plan(s, **_plan_fields()))
    sqlite_database.run_sync(
        lambda s: repositories.claim_actions(
            s, plan_id=plan.id, action_keys=["milestone"], now=datetime.now(UTC), actor=6
        )
    )
    versions = tmp_path / "versions"
    versions.mkdir()
    (versions / "0099_batch.py").write_text(BATCH_REVISION)
    config = alembic_config()
    config.set_main_option(
        "version_locations", os.pathsep.join([str(MIGRATIONS_DIR / "versions"), str(versions)])
    )

    with sqlite_database.engine.connect() as connection:
        upgrade(connection, config=config)
        foreign_keys = connection.exec_driver_sql("PRAGMA foreign_keys").scalar_one()

    assert foreign_keys == 1
    ledger = sqlite_database.run_sync(lambda s: repositories.ledger_for_plan(s, plan.id))
    assert list(ledger) == ["milestone"]
    columns = {c["name"] for c in sa.inspect(sqlite_database.engine).get_columns("plan")}
    assert "extra" in columns


def test_foreign_keys_are_back_on_after_migrating_sqlite() -> None:
    db = Database("sqlite://")  # one shared connection: the one that migrated
    try:
        db.migrate()
        with db.engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1
    finally:
        db.dispose()


def test_database_repr_hides_the_password() -> None:
    db = Database("postgresql+psycopg://planner:hunter2-secret@127.0.0.1:1/planner")
    try:
        assert "hunter2-secret" not in repr(db)
    finally:
        db.dispose()


def test_migrating_different_databases_from_threads_at_once(tmp_path: Path) -> None:
    databases = [Database(f"sqlite:///{tmp_path / f'db{n}.db'}") for n in range(4)]
    barrier = threading.Barrier(len(databases))

    def start(db: Database) -> None:
        barrier.wait(timeout=30)
        db.migrate()

    try:
        with ThreadPoolExecutor(max_workers=len(databases)) as pool:
            list(pool.map(start, databases))
        for db in databases:
            assert _schema_diffs(db, SQLModel.metadata) == []
    finally:
        for db in databases:
            db.dispose()
