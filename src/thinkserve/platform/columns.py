"""Lengths and ranges of the store's columns that take what callers send (imports nothing).

They are checked at the door (the dialects' workspace header, the admin API, the CLI, the
config's model names), so that no value ever fails in the database: one bad record used to block
PostgreSQL metering for good. ``schema`` declares its columns with them.
"""

from __future__ import annotations

NAME_LENGTH = 200
"""``api_keys.name``, ``api_keys.workspace``, ``usage.workspace``, ``usage.model``, ``key_totals.model``."""
KEY_ID_LENGTH = 64
"""``usage.key_id``, ``key_totals.key_id``."""
INT32_MAX = 2**31 - 1
"""``Integer`` columns (``rpm``, ``rps``, ``concurrency``)."""
INT64_MAX = 2**63 - 1
"""``BigInteger`` columns (``tpm``, ``tps``, ``quota_tokens``, ``spend_limit_nano``)."""
