"""Command line of the platform: ``keys``, ``usage`` and ``db`` (imports config, platform lazily;
never the HTTP layer).

::

    thinkserve keys create --name ci [--workspace W] [--rpm N] [--tpm N] [--rps N] [--tps N]
                           [--concurrency N] [--quota-tokens N] [--spend-limit 25.00] [--admin]
    thinkserve keys list [--all] [--json]
    thinkserve keys revoke key_1a2b3c4d5e6f        (or a shown prefix, sk-3f2a, naming one key)
    thinkserve usage [--since 24h] [--until T] [--model M] [--key ID] [--workspace W]
                     [--by key,workspace,mode] [--json]
    thinkserve db upgrade | db current

Each takes ``--config FILE`` and ``--database-url URL`` (else ``THINKSERVE_DATABASE_URL``, else
``[server] database_url``, else the SQLite file in the data folder). ``keys create`` prints the new
key alone on its last line of stdout; ``usage --json`` prints one JSON object a line.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from thinkserve.config import Settings, load_settings
from thinkserve.core.errors import ConfigError

if TYPE_CHECKING:
    from thinkserve.platform.store import Store

log = logging.getLogger("thinkserve")


def register(sub: Any, *, serve: argparse.ArgumentParser) -> None:
    """Add the platform's subcommands to ``sub`` and its flags to the ``serve`` parser."""
    serve.add_argument(
        "--database-url", default=None, help="platform store (default: SQLite in the data folder)"
    )
    serve.add_argument("--redis-url", default=None, help="share rate limits between processes")

    keys = sub.add_parser("keys", help="create, list and revoke API keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="create a key (printed once, on the last line)")
    create.add_argument("--name", required=True)
    create.add_argument("--workspace", default=None, help="bind the key to this X-DashScope-WorkSpace")
    for flag, what in (
        ("--rpm", "requests per minute"),
        ("--tpm", "tokens per minute"),
        ("--rps", "requests per second (default rpm/60)"),
        ("--tps", "tokens per second (default tpm/60)"),
        ("--concurrency", "requests in flight"),
        ("--quota-tokens", "free tokens per model before billing"),
    ):
        create.add_argument(flag, type=_count, default=None, help=what)
    create.add_argument("--spend-limit", default=None, help="stop with Arrearage once billed this much")
    create.add_argument("--admin", action="store_true", help="may use the admin API")
    create.set_defaults(func=_run(_keys_create))
    listing = keys_sub.add_parser("list", help="list keys")
    listing.add_argument("--all", action="store_true", help="include revoked keys")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=_run(_keys_list))
    revoke = keys_sub.add_parser("revoke", help="revoke a key by id or prefix")
    revoke.add_argument("key_id")
    revoke.set_defaults(func=_run(_keys_revoke))

    usage = sub.add_parser("usage", help="hourly usage per model")
    usage.add_argument("--since", default="24h", help="24h, 7d, an ISO time, or Unix seconds (default 24h)")
    usage.add_argument("--until", default=None)
    usage.add_argument("--model", default=None)
    usage.add_argument("--key", default=None, help="one key id")
    usage.add_argument("--workspace", default=None, help="only the usage recorded under this workspace")
    usage.add_argument("--by", default="", help="also group by: key, workspace, mode (comma-separated)")
    usage.add_argument("--json", action="store_true", help="one JSON object per hour x model")
    usage.set_defaults(func=_run(_usage))

    db = sub.add_parser("db", help="the platform database")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    upgrade = db_sub.add_parser("upgrade", help="apply the shipped migrations")
    upgrade.add_argument("--revision", default="head")
    upgrade.set_defaults(func=_run(_db_upgrade, migrate=False))
    current = db_sub.add_parser("current", help="show the schema revision")
    current.set_defaults(func=_run(_db_current, migrate=False))

    for parser in (create, listing, revoke, usage, upgrade, current):
        parser.add_argument("--config", type=Path, default=None, help="a TOML config file")
        parser.add_argument("--database-url", default=None)


def with_flags(settings: Settings, args: argparse.Namespace) -> Settings:
    """``serve``'s platform flags over the settings."""
    changes: dict[str, Any] = {}
    if getattr(args, "database_url", None):
        changes["database_url"] = args.database_url
    if getattr(args, "redis_url", None):
        changes["redis_url"] = args.redis_url
    return replace(settings, **changes) if changes else settings


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("a count >= 0")
    return value


Command = Callable[[argparse.Namespace, Settings, "Store"], Awaitable[int]]


def _run(command: Command, *, migrate: bool = True) -> Callable[[argparse.Namespace], int]:
    def main(args: argparse.Namespace) -> int:
        try:
            settings = with_flags(load_settings(args.config), args)
        except (ConfigError, OSError, ValueError) as exc:
            log.error("invalid configuration: %s", exc)
            return 2
        return asyncio.run(_with_store(command, args, settings, migrate))

    return main


async def _with_store(command: Command, args: argparse.Namespace, settings: Settings, migrate: bool) -> int:
    from thinkserve.platform.database import database_url
    from thinkserve.platform.store import Store

    platform = settings.platform
    store = await Store.open(database_url(platform.database_url, platform.data_dir), migrate=migrate)
    try:
        return await command(args, settings, store)
    finally:
        await store.close()


async def _keys_create(args: argparse.Namespace, settings: Settings, store: Store) -> int:
    from thinkserve.platform.administration import KeyFieldError, new_key
    from thinkserve.platform.billing import PriceError
    from thinkserve.platform.limits import Limits

    try:
        key, secret = new_key(
            args.name,
            workspace=args.workspace,
            admin=args.admin,
            limits=Limits(args.rpm, args.tpm, args.rps, args.tps, args.concurrency),
            quota_tokens=args.quota_tokens,
            spend_limit=args.spend_limit,
        )
    except KeyFieldError as exc:
        log.error("--%s: %s", exc.param.replace("_", "-"), exc)
        return 2
    except PriceError as exc:
        log.error("--spend-limit: %s", exc)
        return 2
    await store.add_key(key)
    sys.stdout.write(
        f"Created {key.id} ({key.name}"
        + (f", workspace {key.workspace}" if key.workspace else "")
        + (", admin" if key.admin else "")
        + "). The key is shown once:\n"
        + secret
        + "\n"
    )
    return 0


async def _keys_list(args: argparse.Namespace, settings: Settings, store: Store) -> int:
    from thinkserve.platform.administration import key_json, keys_with_spend

    rows = [key_json(k, spent) for k, spent in await keys_with_spend(store, include_revoked=args.all)]
    if args.json:
        for row in rows:
            sys.stdout.write(orjson.dumps(row).decode() + "\n")
        return 0
    columns = [
        "id",
        "name",
        "prefix",
        "workspace",
        "admin",
        "rpm",
        "tpm",
        "quota_tokens",
        "spend_limit",
        "spent",
    ]
    if args.all:
        columns.append("revoked_at")
    _table("API keys", columns, [[row[c] for c in columns] for row in rows])
    return 0


async def _keys_revoke(args: argparse.Namespace, settings: Settings, store: Store) -> int:
    import time

    from thinkserve.platform.keys import AmbiguousKey

    try:
        revoked = await store.revoke(args.key_id, time.time())
    except AmbiguousKey as exc:
        log.error("%s", exc)
        return 2
    if revoked is None:
        log.error("no active key %s", args.key_id)
        return 1
    sys.stdout.write(f"Revoked {revoked} (servers stop accepting it within 5 s).\n")
    return 0


async def _usage(args: argparse.Namespace, settings: Settings, store: Store) -> int:
    from thinkserve.platform import report
    from thinkserve.platform.usage_writer import replay_orphans

    try:
        since = report.parse_time(args.since)
        until = None if args.until is None else report.parse_time(args.until)
        by = [b.strip() for b in args.by.split(",") if b.strip()]
        # Journals of servers that died are stored first, so that nothing they metered is missing.
        platform = settings.platform
        await replay_orphans(store, platform.journal_dir, platform.prices)
        rows = await report.hourly(
            store, since, until, model=args.model, key_id=args.key, by=by, workspace=args.workspace
        )
    except ValueError as exc:
        log.error("%s", exc)
        return 2
    if args.json:
        for row in rows:
            sys.stdout.write(orjson.dumps(row.to_json()).decode() + "\n")
        return 0
    columns = ["hour", "model", *by, "calls", "errors", "cancelled", "input", "cached", "output", "reasoning"]
    columns += ["searches", "cost", "p50 ms", "p95 ms", "ttft p50", "ttft p95"]
    table = []
    for row in rows:
        j = row.to_json()
        lat, ttft = j["latency_ms"], j["ttft_ms"]
        table.append(
            [
                *(j[c] for c in ("hour", "model", *by, "calls", "errors", "cancelled", "input_tokens")),
                *(j[c] for c in ("cached_tokens", "output_tokens", "reasoning_tokens", "search_calls")),
                j["cost"],
                *(lat["p50"], lat["p95"], ttft["p50"], ttft["p95"]),
            ]
        )
    _table("Usage per hour (UTC)", columns, table)
    return 0


async def _db_upgrade(args: argparse.Namespace, settings: Settings, store: Store) -> int:
    from thinkserve.platform import database

    await database.upgrade(store.engine, args.revision)
    where = database.display_url(str(store.engine.url))
    sys.stdout.write(f"{where} at revision {await database.current_revision(store.engine)}\n")
    return 0


async def _db_current(args: argparse.Namespace, settings: Settings, store: Store) -> int:
    from thinkserve.platform import database

    sys.stdout.write(f"{await database.current_revision(store.engine)}\n")
    return 0


def _table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for column in columns:
        table.add_column(column, justify="left" if column in ("id", "name", "hour", "model") else "right")
    for row in rows:
        table.add_row(*("-" if v is None else str(v) for v in row))
    # Piped output is not cut to 80 columns.
    Console(width=None if sys.stdout.isatty() else 250).print(table)
