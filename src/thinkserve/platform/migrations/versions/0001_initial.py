"""Keys, usage records and per-key totals.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False, unique=True),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("workspace", sa.String(200)),
        sa.Column("admin", sa.Boolean, nullable=False),
        sa.Column("rpm", sa.Integer),
        sa.Column("tpm", sa.BigInteger),
        sa.Column("rps", sa.Integer),
        sa.Column("tps", sa.BigInteger),
        sa.Column("concurrency", sa.Integer),
        sa.Column("quota_tokens", sa.BigInteger),
        sa.Column("spend_limit_nano", sa.BigInteger),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("revoked_at", sa.Float),
    )
    op.create_table(
        "usage",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("workspace", sa.String(200)),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("thinking", sa.Boolean, nullable=False),
        sa.Column("billed_thinking", sa.Boolean, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("input_tokens", sa.Integer, nullable=False),
        sa.Column("cached_tokens", sa.Integer, nullable=False),
        sa.Column("output_tokens", sa.Integer, nullable=False),
        sa.Column("reasoning_tokens", sa.Integer, nullable=False),
        sa.Column("free_tokens", sa.Integer, nullable=False),
        sa.Column("cost_nano", sa.BigInteger, nullable=False),
        sa.Column("ttft_ms", sa.Float),
        sa.Column("duration_ms", sa.Float, nullable=False),
        sa.Column("finished_at", sa.Float, nullable=False),
        sa.Column("hour", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_usage_hour_model", "usage", ["hour", "model"])
    op.create_index("ix_usage_key_hour", "usage", ["key_id", "hour"])
    op.create_table(
        "key_totals",
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("calls", sa.BigInteger, nullable=False),
        sa.Column("tokens", sa.BigInteger, nullable=False),
        sa.Column("cost_nano", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("key_id", "model"),
    )


def downgrade() -> None:
    op.drop_table("key_totals")
    op.drop_index("ix_usage_key_hour", "usage")
    op.drop_index("ix_usage_hour_model", "usage")
    op.drop_table("usage")
    op.drop_table("api_keys")
