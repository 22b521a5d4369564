"""callback events: each status change with a callback target, its attempts, a change counter

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 05:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("status_changes", sa.Integer(), server_default="0", nullable=False))
    op.create_table(
        "callback_events",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("company_id", sa.String(length=40), nullable=False),
        sa.Column("message_id", sa.String(length=40), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("occurred_at", sa.BigInteger(), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_attempt_at", sa.BigInteger(), nullable=True),
        sa.Column("claimed_until", sa.BigInteger(), nullable=True),
        sa.Column("pending_since", sa.BigInteger(), nullable=False),
        sa.Column("finished_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_callback_events")),
    )
    op.create_index("ix_callback_events_due", "callback_events", ["state", "next_attempt_at"])
    op.create_index("ix_callback_events_message", "callback_events", ["message_id", "sequence"])
    op.create_index("ix_callback_events_company", "callback_events", ["company_id", "occurred_at"])
    op.create_table(
        "callback_attempts",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("event_id", sa.String(length=40), nullable=False),
        sa.Column("attempted_at", sa.BigInteger(), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("response_status", sa.SmallInteger(), nullable=True),
        sa.Column("error", sa.String(length=300), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_callback_attempts")),
    )
    op.create_index(op.f("ix_callback_attempts_event_id"), "callback_attempts", ["event_id"])


def downgrade() -> None:
    op.drop_table("callback_attempts")
    op.drop_table("callback_events")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("status_changes")
