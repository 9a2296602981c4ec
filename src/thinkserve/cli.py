"""Command line: ``thinkserve serve [--host] [--port] [--model PATH | --vllm DIR] [--config FILE]
[--upstream URL --upstream URL ... --tokenizer PATH]``, ``chat``, ...."""

from __future__ import annotations

import argparse
import logging
import math
import os
import secrets
import sys
from dataclasses import replace
from pathlib import Path

from thinkserve import cli_platform
from thinkserve.chat import command as chat_command
from thinkserve.config import Settings, load_settings
from thinkserve.core.errors import ConfigError
from thinkserve.hub import commands as hub_commands
from thinkserve.hub.remote import HubError
from thinkserve.search.settings import SearchSettings, check_folder

log = logging.getLogger("thinkserve")


def _ensure_key(settings: Settings) -> Settings:
    """With no key configured, create one (kept in the data folder) and tell the user.

    It is a normal key (``first_key``: stored at start, with no admin rights); admin keys are always
    explicit: ``thinkserve keys create --admin``, or ``THINKSERVE_API_KEYS`` / ``[server] api_keys``.
    """
    if settings.api_keys:
        return settings
    key_file = settings.data_dir / "api-key"
    if key_file.exists():
        key = key_file.read_text().strip()
    else:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        key = "sk-" + secrets.token_hex(24)
        key_file.write_text(key + "\n")
        key_file.chmod(0o600)
    sys.stderr.write(
        f"\nNo API key configured: use this one (kept in {key_file}):\n\n"
        f"    export DASHSCOPE_API_KEY={key}\n\n"
        "It is a normal key, without admin rights. For the admin API, create an admin key with\n"
        "`thinkserve keys create --name ops --admin`, or set THINKSERVE_API_KEYS.\n\n"
    )
    return replace(settings, api_keys=(key,), first_key=key)


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from thinkserve.app import create_app

    try:
        settings = load_settings(
            args.config,
            host=args.host,
            port=args.port,
            model=args.model,
            vllm=args.vllm,
            upstreams=args.upstream or (),
            tokenizer=args.tokenizer,
        )
        settings = hub_commands.prepare_serve(settings, args)
    except (ConfigError, OSError, ValueError, HubError) as exc:
        log.error("invalid configuration: %s", exc)
        return 2
    if args.search_docs is not None:
        # The flag names the provider: a folder, instead of any configured one.
        settings = replace(settings, search=SearchSettings(docs=args.search_docs))
    try:
        check_folder(settings.search)
    except ConfigError as exc:
        log.error("invalid configuration: %s", exc)
        return 2
    settings = _ensure_key(cli_platform.with_flags(settings, args))
    app = create_app(settings, tune_gc=True)
    sys.stderr.write(
        f"thinkserve on http://{settings.host}:{settings.port}\n"
        f"  OpenAI-compatible: http://{settings.host}:{settings.port}/compatible-mode/v1\n"
        f"  DashScope:         http://{settings.host}:{settings.port}/api/v1/\n"
    )
    # A client that stops reading a stream must not hold shutdown forever: after the drain deadline
    # uvicorn cancels what is left, and metering records it as cancelled during the lifespan shutdown.
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=args.log_level,
        access_log=False,
        timeout_graceful_shutdown=math.ceil(settings.drain_timeout_s),  # uvicorn takes whole seconds
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="thinkserve", description=__doc__)
    parser.add_argument("--log-level", default=os.environ.get("THINKSERVE_LOG_LEVEL", "info"))
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("serve", help="run the server")
    p.add_argument("--host", default=None)
    p.add_argument("--port", type=int, default=None)
    engine = p.add_mutually_exclusive_group()
    engine.add_argument(
        "--model", default=None, help="a GGUF file (or hf://ORG/REPO/FILE, modelscope://...) for every name"
    )
    engine.add_argument(
        "--vllm", default=None, metavar="DIR", help="a Hugging Face model directory served by vLLM"
    )
    p.add_argument("--config", type=Path, default=None, help="a TOML config file")
    p.add_argument(
        "--search-docs", type=Path, default=None, metavar="DIR", help="serve enable_search from this folder"
    )
    p.add_argument(
        "--upstream",
        action="append",
        metavar="URL",
        help="an engine server (vLLM, llama.cpp server) that serves every model name; repeat for a pool",
    )
    p.add_argument(
        "--tokenizer",
        default=None,
        help="the upstreams' tokenizer: a GGUF file, a tokenizer.json or an HF folder",
    )
    p.set_defaults(func=serve)
    cli_platform.register(sub, serve=p)
    chat_command.register(sub)
    hub_commands.register(sub, serve=p)
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        code = args.func(args)
        sys.stdout.flush()
    except BrokenPipeError:
        sys.exit(_stdout_closed())
    sys.exit(code)


# What a shell reports for a writer that SIGPIPE ended (128 + 13), as ``yes | head`` does.
EXIT_BROKEN_PIPE = 141


def _stdout_closed() -> int:
    """Stdout's reader went away (``thinkserve usage --json | head``): stop quietly.

    Whatever is still buffered can never be written; pointing stdout at /dev/null keeps the
    interpreter's final flush from printing another ``BrokenPipeError`` on the way out.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return EXIT_BROKEN_PIPE
