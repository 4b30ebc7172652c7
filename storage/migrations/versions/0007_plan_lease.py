"""plan.lease_owner / plan.lease_until: the run that holds an `executing` or `undoing` plan and
until when (renewed by its heartbeat); the recovery sweep takes over a plan once its lease has
lapsed instead of after a fixed takeover age. Plans already executing or undoing get the old
15-minute age as their lease, so a run of the previous version is not taken for dead at once.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD_TAKEOVER_AGE = timedelta(minutes=15)


def upgrade() -> None:
    with op.batch_alter_table("plan") as batch:
        batch.add_column(sa.Column("lease_owner", sa.String(64), nullable=True))
        batch.add_column(sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True))
    plan = sa.table(
        "plan",
        sa.column("id", sa.String),
        sa.column("state", sa.String),
        sa.column("updated_at", sa.DateTime(timezone=True)),
        sa.column("lease_until", sa.DateTime(timezone=True)),
    )
    connection = op.get_bind()
    running = connection.execute(
        sa.select(plan.c.id, plan.c.updated_at).where(plan.c.state.in_(["executing", "undoing"]))
    ).all()
    for plan_id, updated_at in running:
        connection.execute(
            plan.update()
            .where(plan.c.id == plan_id)
            .values(lease_until=updated_at + _OLD_TAKEOVER_AGE)
        )


def downgrade() -> None:
    with op.batch_alter_table("plan") as batch:
        batch.drop_column("lease_until")
        batch.drop_column("lease_owner")
