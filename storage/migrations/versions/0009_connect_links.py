"""connect_link: one-time links to the password-free connect page (`/connect/<token>`), bound
to a Slack team and user; only the sha256 of the link's token is stored. taiga_link gets
`taiga_full_name`, shown in App Home (NULL on older links).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "connect_link",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("slack_team_id", sa.String(32), nullable=False),
        sa.Column("slack_user_id", sa.String(32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failed_attempts", sa.Integer(), nullable=False, server_default="0"),
    )
    op.create_index("ix_connect_link_expires_at", "connect_link", ["expires_at"])
    with op.batch_alter_table("taiga_link") as batch:
        batch.add_column(sa.Column("taiga_full_name", sa.String(255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("taiga_link") as batch:
        batch.drop_column("taiga_full_name")
    op.drop_index("ix_connect_link_expires_at", table_name="connect_link")
    op.drop_table("connect_link")
