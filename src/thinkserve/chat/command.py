"""``thinkserve chat``: its flags and how it finds a server (imports chat, config).

::

    thinkserve chat [--model M] [--think/--no-think] [--budget N] [--base-url URL] [--dashscope]
                    [--api-key K] [--config FILE]

- The server: ``--base-url`` (what the OpenAI SDK takes, ``http://host:8000/compatible-mode/v1``;
  with ``--dashscope``, what the DashScope SDK takes, ``http://host:8000/api/v1``); else a local
  thinkserve on the config's port (8000); else, when none answers there, one started in this
  process (``chat.embedded``). ``--model PATH.gguf`` always starts one, serving that file.
- The key: ``--api-key``, else ``DASHSCOPE_API_KEY`` as the SDKs read it, else for the local server
  the key ``serve`` made (``~/.cache/thinkserve/api-key``).
- Stdin not a terminal: its text is one question; the answer goes to stdout.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

import httpx
from rich.console import Console

from thinkserve.chat import embedded
from thinkserve.chat.conversation import Conversation
from thinkserve.chat.cost import prices_from
from thinkserve.chat.dashscope_wire import DashScopeWire
from thinkserve.chat.openai_wire import OpenAIWire
from thinkserve.chat.terminal import Screen, Send, interactive, turn
from thinkserve.config import load_settings
from thinkserve.core.errors import ConfigError
from thinkserve.platform.billing import PriceError

log = logging.getLogger(__name__)

DEFAULT_MODEL = "qwen-plus"
TIMEOUT = httpx.Timeout(10.0, read=600.0)
"""A long prompt on a CPU may take minutes before its first token."""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("chat", help="talk to a model in the terminal (or answer a question piped in)")
    p.add_argument(
        "--model", default=None, help=f"model name (default {DEFAULT_MODEL}), or a GGUF file to serve"
    )
    p.add_argument("--think", action=argparse.BooleanOptionalAction, default=None, help="enable_thinking")
    p.add_argument("--budget", type=_positive, default=None, help="thinking_budget in tokens")
    p.add_argument("--base-url", default=None, help="e.g. http://127.0.0.1:8000/compatible-mode/v1")
    p.add_argument("--dashscope", action="store_true", help="use the native DashScope API")
    p.add_argument("--api-key", default=None, help="default: $DASHSCOPE_API_KEY")
    p.add_argument("--config", type=Path, default=None, help="thinkserve config: prices, embedded server")
    p.set_defaults(func=chat)


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text!r}")
    return int(text)


def _model_file(model: str | None) -> str | None:
    """``--model`` when it names a GGUF file (to serve), not a model name."""
    if model is None:
        return None
    if model.endswith(".gguf") or os.sep in model:
        return model
    return None


def _local_root(config: Path | None) -> tuple[str, Path]:
    """Where ``serve`` with this config listens, and its data folder."""
    settings = load_settings(config)
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    return f"http://{host}:{settings.port}", settings.data_dir


def _answers(client: httpx.Client, root: str) -> bool:
    try:
        client.get(root + "/health", timeout=2.0)
    except httpx.TransportError:
        return False
    return True


def chat(args: argparse.Namespace) -> int:
    if args.log_level == "info":
        # The embedded server's logs (and its engine process's, which takes this level) would
        # interleave with the conversation: only errors, unless --log-level asks for more.
        logging.getLogger().setLevel(logging.ERROR)
    out, err = Console(), Console(stderr=True)
    try:
        return _chat(args, out, err)
    except KeyboardInterrupt:
        err.print("interrupted", style="yellow")
        return 130
    except _Refused as exc:
        err.print(str(exc), style="bold red", markup=False, highlight=False)
        return exc.code


class _Refused(Exception):
    """The chat cannot start: a message and the exit status."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _chat(args: argparse.Namespace, out: Console, err: Console) -> int:
    try:
        prices = prices_from(args.config)
        local, data_dir = _local_root(args.config)
    except (OSError, ValueError, ConfigError, PriceError) as exc:
        raise _Refused(f"invalid configuration: {exc}", 2) from exc
    model_file = _model_file(args.model)
    if model_file is not None and args.base_url:
        raise _Refused("--model names a file to serve here: it cannot go with --base-url", 2)
    if model_file is not None and not Path(model_file).is_file():
        raise _Refused(f"no model file {model_file}", 2)
    key = args.api_key or os.environ.get("DASHSCOPE_API_KEY")
    server: embedded.Embedded | None = None
    with httpx.Client(timeout=TIMEOUT) as client:
        if args.base_url:
            base = args.base_url
        elif model_file is None and _answers(client, local):
            key_file = data_dir / "api-key"
            if key is None and key_file.is_file():
                key = key_file.read_text().strip()
            base = local + ("/api/v1" if args.dashscope else "/compatible-mode/v1")
        else:
            try:
                server = embedded.start(args.config, model_file)
            except (embedded.EmbeddedError, ConfigError, OSError) as exc:
                raise _Refused(f"cannot start the embedded server: {exc}", 1) from exc
            key = server.api_key
            base = server.root + ("/api/v1" if args.dashscope else "/compatible-mode/v1")
        try:
            wire = (DashScopeWire if args.dashscope else OpenAIWire)(client, base, key)
            conversation = Conversation(
                model=DEFAULT_MODEL if args.model is None or model_file else args.model,
                enable_thinking=args.think,
                thinking_budget=args.budget,
                prices=prices,
            )
            if not sys.stdin.isatty():
                return _answer_pipe(conversation, Screen(out, err, pipe=True), wire.stream)
            import readline  # noqa: F401  (line editing and history for input())

            where = base
            if server is not None:
                where = (
                    f"an embedded server ({Path(model_file).name})" if model_file else "an embedded server"
                )
            return interactive(conversation, Screen(out, err, pipe=False), wire.stream, where, out.input)
        finally:
            if server is not None:
                server.close()


def _answer_pipe(conversation: Conversation, screen: Screen, send: Send) -> int:
    """Stdin's text as one question: 0 when answered, 1 when refused, 2 when there was none."""
    question = sys.stdin.read().strip()
    if not question:
        raise _Refused("no question on stdin", 2)
    return 0 if turn(conversation, screen, send, question) else 1
