"""Plan versions: `plan.proposal_version` (the version a person sees and approves) and
`plan_revision`, the history of each version (who made it, how, from what instruction).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("plan") as batch:
        batch.add_column(
            sa.Column("proposal_version", sa.Integer(), nullable=False, server_default="0")
        )
    op.create_table(
        "plan_revision",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "plan_id",
            sa.String(32),
            sa.ForeignKey("plan.id", ondelete="CASCADE", name="fk_plan_revision_plan"),
            nullable=False,
        ),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("author_slack_id", sa.String(64), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("proposal", sa.JSON(none_as_null=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("plan_id", "number", name="uq_plan_revision_number"),
    )


def downgrade() -> None:
    op.drop_table("plan_revision")
    with op.batch_alter_table("plan") as batch:
        batch.drop_column("proposal_version")
