"""Race-safe inserts: one `INSERT ... ON CONFLICT` statement, on SQLite and on PostgreSQL.

The database settles a race between concurrent inserters (other threads, other replicas) of
the same unique key: exactly one insert creates the row, and the others skip it or update it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, SQLModel

_INSERTS = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}


def insert_unless_present(
    session: Session, row: SQLModel, *, key: Collection[str] | None
) -> bool:
    """Insert `row` unless a row with the same `key` columns exists (`key=None`: the same
    values of any unique key of the table); True iff it was inserted.

    Any other refusal (a foreign key, another unique key) still raises `IntegrityError`.
    """
    elements = list(key) if key is not None else None
    statement = _insert(session, row).on_conflict_do_nothing(index_elements=elements)
    # RETURNING, not rowcount: SQLAlchemy reports -1 as an INSERT's rowcount on psycopg.
    inserted = session.execute(statement.returning(sa.literal(True))).first()
    return inserted is not None


def upsert(
    session: Session, row: SQLModel, *, key: Collection[str], changes: Mapping[str, Any]
) -> None:
    """Insert `row`, or apply `changes` to the row that already holds its `key` columns."""
    statement = _insert(session, row)
    statement = statement.on_conflict_do_update(
        index_elements=list(key), set_={name: statement.excluded[name] for name in changes}
    )
    session.execute(statement)


def _insert(session: Session, row: SQLModel) -> sqlite.Insert | postgresql.Insert:
    """`INSERT` of `row`'s columns in the session's SQL dialect (a key left unset is generated)."""
    table = row.__table__  # type: ignore[attr-defined]
    values = {
        column.key: getattr(row, column.key)
        for column in table.columns
        if not (column.primary_key and getattr(row, column.key) is None)
    }
    dialect = session.get_bind().dialect.name
    return _INSERTS[dialect](type(row)).values(values)
