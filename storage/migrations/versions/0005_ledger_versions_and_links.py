"""What undo and moves need to know of each write, and the link back to a plan's thread:
`write_ledger.taiga_version` (the object's Taiga `version` right after our write, so undo can
tell whether anyone changed it since), `write_ledger.previous_milestone_id` (where a moved story
was before: NULL is the backlog), and `plan.slack_permalink` (the thread a plan came from).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("write_ledger") as batch:
        batch.add_column(sa.Column("taiga_version", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("previous_milestone_id", sa.Integer(), nullable=True))
    with op.batch_alter_table("plan") as batch:
        batch.add_column(sa.Column("slack_permalink", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("plan") as batch:
        batch.drop_column("slack_permalink")
    with op.batch_alter_table("write_ledger") as batch:
        batch.drop_column("previous_milestone_id")
        batch.drop_column("taiga_version")
