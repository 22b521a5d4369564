"""bind slots: a carrier's binds are a cluster-wide total

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28 09:00:00.000000
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
    op.create_table(
        "bind_slots",
        sa.Column("carrier", sa.String(length=40), nullable=False),
        sa.Column("slot", sa.SmallInteger(), nullable=False),
        sa.Column("holder", sa.String(length=100), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("acquired_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("carrier", "slot", name=op.f("pk_bind_slots")),
    )


def downgrade() -> None:
    op.drop_table("bind_slots")
