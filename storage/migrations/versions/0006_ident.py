"""write_ledger.external_reference: the Taiga `external_reference` our latest attempt of a write
sent (`["taiga-planner", "<plan id>:<action key>"]`), so reconciliation recognises that object
exactly; NULL on rows claimed before references were sent (and on sprints, which have none).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("write_ledger") as batch:
        batch.add_column(
            sa.Column("external_reference", sa.JSON(none_as_null=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("write_ledger") as batch:
        batch.drop_column("external_reference")
