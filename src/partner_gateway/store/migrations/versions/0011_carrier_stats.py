"""carrier_stats: what each worker sees of each SMPP carrier, for `partner-gateway carriers`

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 16:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "carrier_stats",
        sa.Column("carrier", sa.String(length=40), nullable=False),
        sa.Column("holder", sa.String(length=100), nullable=False),
        sa.Column("health", sa.String(length=10), nullable=False),
        sa.Column("binds_held", sa.SmallInteger(), nullable=False),
        sa.Column("binds_bound", sa.SmallInteger(), nullable=False),
        sa.Column("window", sa.Integer(), nullable=False),
        sa.Column("in_flight", sa.Integer(), nullable=False),
        sa.Column("submits_per_second", sa.Float(), nullable=False),
        sa.Column("receipts_per_second", sa.Float(), nullable=False),
        sa.Column("submits_total", sa.BigInteger(), nullable=False),
        sa.Column("receipts_total", sa.BigInteger(), nullable=False),
        sa.Column("last_error", sa.String(length=300), nullable=True),
        sa.Column("last_error_at", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("carrier", "holder", name=op.f("pk_carrier_stats")),
    )


def downgrade() -> None:
    op.drop_table("carrier_stats")
