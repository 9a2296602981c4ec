"""Alembic environment: run by ``thinkserve.platform.database.upgrade`` with an open connection."""

from __future__ import annotations

from alembic import context

from thinkserve.platform.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `thinkserve db upgrade` (it passes the connection)")

context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
