"""Inbound messages, the numbers assigned to companies, concatenated MO parts, opt-out lists

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 16:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "company_numbers",
        sa.Column("channel", sa.String(length=10), nullable=False),
        sa.Column("number", sa.String(length=100), nullable=False),
        sa.Column("company_id", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["company_id"], ["companies.id"], name=op.f("fk_company_numbers_company_id_companies")
        ),
        sa.PrimaryKeyConstraint("channel", "number", name=op.f("pk_company_numbers")),
    )
    op.create_index(op.f("ix_company_numbers_company_id"), "company_numbers", ["company_id"])
    op.create_table(
        "inbound_messages",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("company_id", sa.String(length=40), nullable=False),
        sa.Column("channel", sa.String(length=10), nullable=False),
        sa.Column("from_number", sa.String(length=100), nullable=False),
        sa.Column("to_number", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("received_at", sa.BigInteger(), nullable=False),
        sa.Column("provider", sa.String(length=40), nullable=False),
        sa.Column("provider_message_id", sa.String(length=200), nullable=True),
        sa.Column("parts", sa.SmallInteger(), nullable=False),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.Column("dedup_key", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbound_messages")),
        sa.UniqueConstraint("channel", "dedup_key", name=op.f("uq_inbound_messages_channel_dedup_key")),
    )
    op.create_index("ix_inbound_messages_list", "inbound_messages", ["company_id", "received_at", "id"])
    op.create_index(
        "ix_inbound_messages_list_channel", "inbound_messages", ["company_id", "channel", "received_at", "id"]
    )
    op.create_index(
        "ix_inbound_messages_list_from",
        "inbound_messages",
        ["company_id", "from_number", "received_at", "id"],
    )
    op.create_index(
        "ix_inbound_messages_list_to", "inbound_messages", ["company_id", "to_number", "received_at", "id"]
    )
    op.create_table(
        "inbound_parts",
        sa.Column("group_key", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.SmallInteger(), nullable=False),
        sa.Column("total", sa.SmallInteger(), nullable=False),
        sa.Column("data_coding", sa.SmallInteger(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("received_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("group_key", "seq", name=op.f("pk_inbound_parts")),
    )
    op.create_index(op.f("ix_inbound_parts_received_at"), "inbound_parts", ["received_at"])
    op.create_table(
        "opt_outs",
        sa.Column("company_id", sa.String(length=40), nullable=False),
        sa.Column("channel", sa.String(length=10), nullable=False),
        sa.Column("number", sa.String(length=100), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("company_id", "channel", "number", name=op.f("pk_opt_outs")),
    )


def downgrade() -> None:
    op.drop_table("opt_outs")
    op.drop_index(op.f("ix_inbound_parts_received_at"), table_name="inbound_parts")
    op.drop_table("inbound_parts")
    for name in ("list_to", "list_from", "list_channel", "list"):
        op.drop_index(f"ix_inbound_messages_{name}", table_name="inbound_messages")
    op.drop_table("inbound_messages")
    op.drop_index(op.f("ix_company_numbers_company_id"), table_name="company_numbers")
    op.drop_table("company_numbers")
