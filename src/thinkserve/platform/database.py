"""Where the platform's tables live, and bringing their schema up to date (imports platform.schema).

``None`` means the embedded default, a SQLite file in the data folder; PostgreSQL is given by URL::

    sqlite+aiosqlite:////home/me/.cache/thinkserve/thinkserve.db    (default)
    postgresql://user@127.0.0.1:5432/thinkserve                     (-> postgresql+asyncpg://...)
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

if TYPE_CHECKING:
    from alembic.config import Config

log = logging.getLogger(__name__)
# Alembic logs every plugin (on import) and context (on each revision check) at INFO; our own line
# says what ran. Alembic is imported lazily, after this.
logging.getLogger("alembic").setLevel(logging.WARNING)

DB_FILE = "thinkserve.db"
_PG_MIGRATION_LOCK = 0x7468696E  # "thin": an arbitrary advisory lock id for migrations


def database_url(url: str | None, data_dir: Path) -> str:
    """The async SQLAlchemy URL for ``url`` (``None``: the SQLite file in ``data_dir``)."""
    if not url:
        return f"sqlite+aiosqlite:///{data_dir / DB_FILE}"
    parsed = make_url(url)
    if parsed.drivername in ("sqlite", "sqlite+pysqlite"):
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    elif parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg2", "postgresql+psycopg"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    return parsed.render_as_string(hide_password=False)


def display_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def _sqlite_file(url: str) -> Path | None:
    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite") or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


CONNECT_TIMEOUT_S = 2.0
COMMAND_TIMEOUT_S = 10.0


def make_engine(
    url: str, *, connect_timeout_s: float = CONNECT_TIMEOUT_S, command_timeout_s: float = COMMAND_TIMEOUT_S
) -> AsyncEngine:
    """An engine; SQLite gets WAL, a busy timeout and real transactions.

    PostgreSQL gets short timeouts: without them a database that went away holds a request for
    asyncpg's 60 s connect timeout (or forever on a query), where it should get a quick 503.
    """
    path = _sqlite_file(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    options: dict[str, Any] = {}
    if make_url(url).drivername.startswith("postgresql"):
        options["connect_args"] = {"timeout": connect_timeout_s, "command_timeout": command_timeout_s}
        # Waiting for a pooled connection is bounded the same way.
        options["pool_timeout"] = command_timeout_s
    engine = create_async_engine(url, pool_pre_ping=path is None, **options)
    if engine.dialect.name == "sqlite":
        _sqlite_transactions(engine)
    return engine


def _sqlite_transactions(engine: AsyncEngine) -> None:
    # pysqlite's own implicit BEGIN skips DDL and SELECTs; take transaction control ourselves, as
    # the SQLAlchemy docs for aiosqlite recommend.
    @event.listens_for(engine.sync_engine, "connect")
    def _connect(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN")


def _alembic_config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", "thinkserve.platform:migrations")
    return config


def _upgrade(connection: Connection, revision: str) -> None:
    if connection.dialect.name == "postgresql":
        # Several servers may start at once: one migrates, the others wait, then find it done.
        connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _PG_MIGRATION_LOCK})
    from alembic import command

    config = _alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


def _current(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


@contextlib.contextmanager
def _file_lock(path: Path | None) -> Iterator[None]:
    if path is None:
        yield
        return
    fd = os.open(f"{path}.migrate.lock", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Apply the shipped migrations up to ``revision`` (at startup and by ``thinkserve db upgrade``)."""
    async with engine.connect() as conn:
        current = await conn.run_sync(_current)
    if current == head_revision() and revision == "head":
        return
    path = _sqlite_file(str(engine.url))
    lock = _file_lock(path)
    await asyncio.to_thread(lock.__enter__)
    try:
        log.info("migrating %s from %s to %s", display_url(str(engine.url)), current, revision)
        async with engine.begin() as conn:
            await conn.run_sync(_upgrade, revision)
    finally:
        lock.__exit__(None, None, None)


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        return await conn.run_sync(_current)
