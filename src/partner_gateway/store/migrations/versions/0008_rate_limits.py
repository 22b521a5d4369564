"""rate limits: a company's own limits, and what each API process admitted (shared accounting)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 06:00:00.000000

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
        "company_rate_limits",
        sa.Column("company_id", sa.String(length=40), nullable=False),
        sa.Column("sends_per_second", sa.Float(), nullable=True),
        sa.Column("sends_burst", sa.Integer(), nullable=True),
        sa.Column("reads_per_second", sa.Float(), nullable=True),
        sa.Column("reads_burst", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["company_id"], ["companies.id"], name=op.f("fk_company_rate_limits_company_id_companies")
        ),
        sa.PrimaryKeyConstraint("company_id", name=op.f("pk_company_rate_limits")),
    )
    op.create_table(
        "rate_limit_usage",
        sa.Column("process_id", sa.String(length=100), nullable=False),
        sa.Column("company_id", sa.String(length=40), nullable=False),
        sa.Column("traffic", sa.String(length=10), nullable=False),
        sa.Column("admitted", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("process_id", "company_id", "traffic", name=op.f("pk_rate_limit_usage")),
    )
    op.create_index(op.f("ix_rate_limit_usage_updated_at"), "rate_limit_usage", ["updated_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_rate_limit_usage_updated_at"), table_name="rate_limit_usage")
    op.drop_table("rate_limit_usage")
    op.drop_table("company_rate_limits")
