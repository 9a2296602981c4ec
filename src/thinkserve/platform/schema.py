"""The tables (imports platform.columns); migrations/ creates and evolves them.

Times are Unix seconds (float); ``hour`` is the start of the hour a request finished in, so that
hourly reports group on an indexed integer. Money is integer nano-units (see ``billing``).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
)

from thinkserve.platform.columns import KEY_ID_LENGTH, NAME_LENGTH

metadata = MetaData()

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(NAME_LENGTH), nullable=False),
    Column("digest", String(64), nullable=False, unique=True),
    Column("prefix", String(16), nullable=False),
    Column("workspace", String(NAME_LENGTH)),
    Column("admin", Boolean, nullable=False),
    Column("rpm", Integer),
    Column("tpm", BigInteger),
    Column("rps", Integer),
    Column("tps", BigInteger),
    Column("concurrency", Integer),
    Column("quota_tokens", BigInteger),
    Column("spend_limit_nano", BigInteger),
    Column("created_at", Float, nullable=False),
    Column("revoked_at", Float),
)

usage = Table(
    "usage",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("key_id", String(KEY_ID_LENGTH), nullable=False),
    Column("workspace", String(NAME_LENGTH)),
    Column("model", String(NAME_LENGTH), nullable=False),
    Column("thinking", Boolean, nullable=False),
    Column("billed_thinking", Boolean, nullable=False),
    Column("status", String(16), nullable=False),
    Column("input_tokens", Integer, nullable=False),
    Column("cached_tokens", Integer, nullable=False),
    Column("output_tokens", Integer, nullable=False),
    Column("reasoning_tokens", Integer, nullable=False),
    Column("free_tokens", Integer, nullable=False),
    Column("cost_nano", BigInteger, nullable=False),
    Column("ttft_ms", Float),
    Column("duration_ms", Float, nullable=False),
    Column("finished_at", Float, nullable=False),
    Column("hour", BigInteger, nullable=False),
    Column("search_calls", Integer, nullable=False, server_default="0"),
    Index("ix_usage_hour_model", "hour", "model"),
    Index("ix_usage_key_hour", "key_id", "hour"),
)

key_totals = Table(
    "key_totals",
    metadata,
    Column("key_id", String(KEY_ID_LENGTH), nullable=False),
    Column("model", String(NAME_LENGTH), nullable=False),
    Column("calls", BigInteger, nullable=False),
    Column("tokens", BigInteger, nullable=False),
    Column("cost_nano", BigInteger, nullable=False),
    PrimaryKeyConstraint("key_id", "model"),
)
