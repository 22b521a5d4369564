"""message_stats and message_latency: the aggregates of GET /messages/stats

The counts of the messages already stored are filled in from the messages table; their latency
is not (the time of their final status is not kept apart from later changes), so p50/p95 cover
the messages that become final after this migration.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 17:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "message_stats",
        sa.Column("company_id", sa.String(length=40), nullable=False),
        sa.Column("channel", sa.String(length=10), nullable=False),
        sa.Column("hour", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("error_code", sa.String(length=40), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "company_id", "channel", "hour", "status", "error_code", name=op.f("pk_message_stats")
        ),
    )
    op.create_table(
        "message_latency",
        sa.Column("company_id", sa.String(length=40), nullable=False),
        sa.Column("channel", sa.String(length=10), nullable=False),
        sa.Column("hour", sa.BigInteger(), nullable=False),
        sa.Column("bin", sa.SmallInteger(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("company_id", "channel", "hour", "bin", name=op.f("pk_message_latency")),
    )
    op.execute(
        "INSERT INTO message_stats (company_id, channel, hour, status, error_code, count) "
        "SELECT company_id, channel, created_at - created_at % 3600000, status, "
        "COALESCE(error_code, ''), COUNT(*) FROM messages "
        "GROUP BY company_id, channel, created_at - created_at % 3600000, status, COALESCE(error_code, '')"
    )


def downgrade() -> None:
    op.drop_table("message_latency")
    op.drop_table("message_stats")
