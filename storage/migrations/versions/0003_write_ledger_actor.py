"""write_ledger.actor_taiga_id: the Taiga user whose session sends the write; drop the unused
write_ledger.payload_digest (an approved proposal never changes, so there is nothing to compare).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("write_ledger") as batch:
        batch.add_column(sa.Column("actor_taiga_id", sa.Integer(), nullable=True))
        batch.drop_column("payload_digest")


def downgrade() -> None:
    with op.batch_alter_table("write_ledger") as batch:
        batch.add_column(sa.Column("payload_digest", sa.String(64), nullable=True))
        batch.drop_column("actor_taiga_id")
