"""console_sessions: the partner console's sign-ins, shared by every API process on the store

A row per signed-in browser: the session token's SHA-256 (the token itself lives only in the
browser's cookie), the company and the API key it was exchanged for (revoking that key ends the
session: every look-up joins api_keys), its CSRF token, and its times.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02 20:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "console_sessions",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("company_id", sa.String(length=40), nullable=False),
        sa.Column("api_key_id", sa.String(length=40), nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("last_seen_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["api_key_id"], ["api_keys.id"], name=op.f("fk_console_sessions_api_key_id_api_keys")
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_console_sessions")),
    )
    op.create_index(op.f("ix_console_sessions_expires_at"), "console_sessions", ["expires_at"])
    op.create_index(op.f("ix_console_sessions_api_key_id"), "console_sessions", ["api_key_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_console_sessions_api_key_id"), table_name="console_sessions")
    op.drop_index(op.f("ix_console_sessions_expires_at"), table_name="console_sessions")
    op.drop_table("console_sessions")
