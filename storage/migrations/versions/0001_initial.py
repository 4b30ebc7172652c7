"""Initial tables: taiga_link, channel_project, plan, write_ledger, slack_event.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "taiga_link",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("slack_team_id", sa.String(32), nullable=False),
        sa.Column("slack_user_id", sa.String(32), nullable=False),
        sa.Column("taiga_user_id", sa.Integer(), nullable=False),
        sa.Column("taiga_username", sa.String(255), nullable=False),
        sa.Column("auth_token_enc", sa.Text(), nullable=False),
        sa.Column("refresh_token_enc", sa.Text(), nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
        sa.UniqueConstraint("slack_team_id", "slack_user_id", name="uq_taiga_link_slack_user"),
    )
    op.create_table(
        "channel_project",
        sa.Column("slack_team_id", sa.String(32), nullable=False),
        sa.Column("slack_channel_id", sa.String(32), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("project_slug", sa.String(255), nullable=False),
        sa.Column("project_name", sa.String(255), nullable=False),
        sa.Column("set_by", sa.String(64), nullable=False),
        _ts("updated_at"),
        sa.PrimaryKeyConstraint("slack_team_id", "slack_channel_id"),
    )
    op.create_table(
        "plan",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("slack_team_id", sa.String(32), nullable=False),
        sa.Column("slack_channel_id", sa.String(32), nullable=False),
        sa.Column("slack_thread_ts", sa.String(32), nullable=False),
        sa.Column("slack_message_ts", sa.String(32), nullable=True),
        sa.Column("requester_slack_id", sa.String(64), nullable=True),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("project_slug", sa.String(255), nullable=False),
        sa.Column("target_sprint", sa.String(255), nullable=False),
        sa.Column("minutes_digest", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("proposal", sa.JSON(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("decided_by", sa.String(64), nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
        _ts("expires_at", nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
    )
    op.create_index("ix_plan_state_expires_at", "plan", ["state", "expires_at"])
    op.create_index(
        "ix_plan_slack_thread", "plan", ["slack_team_id", "slack_channel_id", "slack_thread_ts"]
    )
    op.create_table(
        "write_ledger",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("plan_id", sa.String(32), nullable=False),
        sa.Column("action_key", sa.String(255), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("taiga_id", sa.Integer(), nullable=True),
        sa.Column("taiga_ref", sa.Integer(), nullable=True),
        _ts("attempted_at"),
        _ts("done_at", nullable=True),
        sa.Column("payload_digest", sa.String(64), nullable=True),
        sa.ForeignKeyConstraint(
            ["plan_id"], ["plan.id"], name="fk_write_ledger_plan", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("plan_id", "action_key", name="uq_write_ledger_plan_action"),
    )
    op.create_table(
        "slack_event",
        sa.Column("event_id", sa.String(64), primary_key=True),
        _ts("received_at"),
    )
    op.create_index("ix_slack_event_received_at", "slack_event", ["received_at"])


def downgrade() -> None:
    op.drop_index("ix_slack_event_received_at", table_name="slack_event")
    op.drop_table("slack_event")
    op.drop_table("write_ledger")
    op.drop_index("ix_plan_slack_thread", table_name="plan")
    op.drop_index("ix_plan_state_expires_at", table_name="plan")
    op.drop_table("plan")
    op.drop_table("channel_project")
    op.drop_table("taiga_link")
