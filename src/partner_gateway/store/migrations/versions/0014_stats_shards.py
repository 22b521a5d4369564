"""message_stats and message_latency: a shard in each key, so concurrent writers miss each other

On PostgreSQL, every transaction that counts a company's messages of one channel and hour upserts
the same few rows, and a second transaction waits for the first one's row lock until it commits:
with an API process and two workers, sampled waits were almost all `Lock:transactionid` on the
message_stats upsert. Each write now picks one of a few shards (store/message_stats.py), and the
reads sum over them. The rows already there become shard 0.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02 20:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_KEYS = {
    "message_stats": ["company_id", "channel", "hour", "status", "error_code"],
    "message_latency": ["company_id", "channel", "hour", "bin"],
}


def upgrade() -> None:
    for table, keys in _KEYS.items():
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("shard", sa.SmallInteger(), nullable=False, server_default="0"))
            batch.drop_constraint(f"pk_{table}", type_="primary")
            batch.create_primary_key(f"pk_{table}", [*keys, "shard"])


def downgrade() -> None:
    # The shards summed back into one row per key, then the key without them.
    op.execute(
        "CREATE TEMPORARY TABLE stats_folded AS SELECT company_id, channel, hour, status, error_code, "
        "SUM(count) AS count FROM message_stats GROUP BY company_id, channel, hour, status, error_code"
    )
    op.execute(
        "CREATE TEMPORARY TABLE latency_folded AS SELECT company_id, channel, hour, bin, "
        "SUM(count) AS count FROM message_latency GROUP BY company_id, channel, hour, bin"
    )
    op.execute("DELETE FROM message_stats")
    op.execute("DELETE FROM message_latency")
    for table, keys in _KEYS.items():
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(f"pk_{table}", type_="primary")
            batch.drop_column("shard")
            batch.create_primary_key(f"pk_{table}", keys)
    op.execute(
        "INSERT INTO message_stats (company_id, channel, hour, status, error_code, count) "
        "SELECT company_id, channel, hour, status, error_code, count FROM stats_folded"
    )
    op.execute(
        "INSERT INTO message_latency (company_id, channel, hour, bin, count) "
        "SELECT company_id, channel, hour, bin, count FROM latency_folded"
    )
    op.execute("DROP TABLE stats_folded")
    op.execute("DROP TABLE latency_folded")
