"""Bounded text columns that refuse an over-long value the same way on every backend.

SQLite stores a 300-character value in a VARCHAR(255) column; PostgreSQL refuses the whole
statement (`StringDataRightTruncation`). `BoundedString` checks the length before the value
reaches either, for ORM and Core statements alike, and raises `ValueTooLong`, which names the
value in words (SQLAlchemy hands it on as a `StatementError` whose `orig` it is).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import StatementError


class ValueTooLong(ValueError):
    """A value longer than the column that would hold it."""

    def __init__(self, what: str, length: int, limit: int) -> None:
        super().__init__(f"{what} is {length} characters long; at most {limit} fit")
        self.what = what
        self.length = length
        self.limit = limit

    @property
    def sentence(self) -> str:
        return (
            f"The {self.what} is {self.length:,} characters long; I can keep at most "
            f"{self.limit:,}. Shorten it and try again."
        )


class BoundedString(sa.TypeDecorator[str]):
    """`VARCHAR(length)` that raises `ValueTooLong` (naming `what`) instead of truncating or
    failing differently per backend."""

    impl = sa.String
    cache_ok = True

    def __init__(self, length: int, what: str) -> None:
        super().__init__(length)
        self.length = length
        self.what = what

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        if value is not None and len(value) > self.length:
            raise ValueTooLong(self.what, len(value), self.length)
        return value


def too_long(error: BaseException) -> ValueTooLong | None:
    """The `ValueTooLong` behind `error` (raised directly or wrapped by SQLAlchemy), if any."""
    if isinstance(error, ValueTooLong):
        return error
    if isinstance(error, StatementError) and isinstance(error.orig, ValueTooLong):
        return error.orig
    return None

