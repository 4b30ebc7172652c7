"""drafting_claim: the plans being drafted, one per Slack user per channel and at most the
workspace's cap at a time (slots 0..cap-1), so the limits hold across replicas.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "drafting_claim",
        sa.Column("slack_team_id", sa.String(32), nullable=False),
        sa.Column("slot", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("slack_channel_id", sa.String(32), nullable=False),
        sa.Column("slack_user_id", sa.String(64), nullable=False),
        sa.Column("token", sa.String(32), nullable=False),
        sa.Column("slack_thread_ts", sa.String(32), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("slack_team_id", "slot"),
        sa.UniqueConstraint(
            "slack_team_id", "slack_channel_id", "slack_user_id", name="uq_drafting_claim_user"
        ),
    )


def downgrade() -> None:
    op.drop_table("drafting_claim")
