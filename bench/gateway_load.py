"""Closed-loop load for ``bench/gateway.py``: C clients, each sending its next request as soon as its
last one finished, for a warm-up and then a measured window (aiohttp and uvloop; imports nothing
of thinkserve). Prints one JSON object on stdout::

    {"label": "litellm", "api": "chat", "stream": true, "concurrency": 8, "window_s": 10.0,
     "ok": 1234, "errors": 0, "error_kinds": {}, "rps": 123.4, "p50_ms": 61.2, "p99_ms": 90.1,
     "chunks_per_s": 8021.0, "chunks_per_stream": 65.0, "ttfc_p50_ms": 12.0,
     "load_cpu": 0.41, "gw_cpu": 1.0, "up_cpu": 0.08}

Two request shapes: ``--api chat`` (OpenAI chat: ``messages``, the answer in
``choices[0].message.content`` or streamed deltas) and ``--api completions`` (vLLM's token-level
completions: ``prompt`` as token ids, ``return_token_ids``; the answer's ids in
``choices[0].token_ids``). Every response is checked: status 200, the JSON parses and holds a
choice, and a stream's every ``data:`` event parses, carries no error, and ends with ``[DONE]``.

Only requests that finish inside the window count. ``chunks_per_s`` counts every ``data:`` event
but ``[DONE]``. ``--watch NAME=PID`` reports the CPU (in cores) that PID and its children used in
the window, read from ``/proc``; the generator's own is ``load_cpu``.

aiohttp, not httpx: on this machine httpx's client costs milliseconds of CPU a request, and it
would measure itself rather than the gateway.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
import time
from typing import Any

import orjson

TICK = os.sysconf("SC_CLK_TCK")


class Bad(Exception):
    """A response that fails the checks."""


def tree_cpu(root: int) -> float:
    """CPU seconds (user + system) of ``root`` and its living descendants."""
    children: dict[int, list[int]] = {}
    cpu: dict[int, float] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        children.setdefault(int(fields[1]), []).append(int(name))
        cpu[int(name)] = (int(fields[11]) + int(fields[12])) / TICK
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        total += cpu.get(pid, 0.0)
        todo.extend(children.get(pid, ()))
    return total


def own_cpu() -> float:
    times = os.times()
    return times.user + times.system


def request_body(args: argparse.Namespace) -> bytes:
    body: dict[str, Any] = {"model": args.model, "max_tokens": args.max_tokens}
    if args.api == "chat":
        body["messages"] = [{"role": "user", "content": args.prompt}]
    else:
        body["prompt"] = [int(t) for t in args.prompt_ids.split(",")]
        body["return_token_ids"] = True
    if args.stream:
        body["stream"] = True
        if args.api == "completions":
            body["stream_options"] = {"include_usage": True}
    return orjson.dumps(body)


def check_body(api: str, raw: bytes) -> None:
    try:
        choice = orjson.loads(raw)["choices"][0]
        ok = (
            isinstance(choice["message"]["content"], str)
            if api == "chat"
            else isinstance(choice["token_ids"], list) and bool(choice["token_ids"])
        )
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
        raise Bad("unparseable response") from None
    if not ok:
        raise Bad("no answer in the response")


class Stream:
    """Counts a stream's ``data:`` events and checks each."""

    __slots__ = ("chunks", "done", "first")

    def __init__(self) -> None:
        self.chunks = 0
        self.done = False
        self.first = 0.0

    def line(self, raw: bytes) -> None:
        if not raw.startswith(b"data:"):
            return  # blank lines, event:/id: lines, comments
        payload = raw[5:].strip()
        if self.done:
            raise Bad("data after [DONE]")
        if payload == b"[DONE]":
            self.done = True
            return
        try:
            event = orjson.loads(payload)
        except orjson.JSONDecodeError:
            raise Bad("unparseable event") from None
        if "error" in event:
            raise Bad("error event")
        if not self.chunks:
            self.first = time.perf_counter()
        self.chunks += 1


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    return values[min(len(values) - 1, max(0, math.ceil(p / 100 * len(values)) - 1))]


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


class Load:
    """The clients' shared tallies over one measured window."""

    def __init__(self, args: argparse.Namespace) -> None:
        import aiohttp

        self.args = args
        self.body = request_body(args)
        self.headers = {"Authorization": f"Bearer {args.key}", "Content-Type": "application/json"}
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=args.concurrency, ttl_dns_cache=None),
            timeout=aiohttp.ClientTimeout(total=args.timeout),
            skip_auto_headers=("User-Agent",),
        )
        self.watch = {name: int(pid) for name, _, pid in (w.partition("=") for w in args.watch)}
        self.start = time.perf_counter() + args.warmup
        self.end = self.start + args.duration
        self.latencies: list[float] = []
        self.ttfc: list[float] = []
        self.chunks = 0
        self.errors: dict[str, int] = {}
        self.marks: dict[str, float] = {}

    def mark(self, tag: str) -> None:
        self.marks[f"load{tag}"] = own_cpu()
        for name, pid in self.watch.items():
            self.marks[f"{name}{tag}"] = tree_cpu(pid)

    async def window(self) -> None:
        """CPU marks at the window's edges."""
        await asyncio.sleep(max(0.0, self.start - time.perf_counter()))
        self.mark("0")
        await asyncio.sleep(max(0.0, self.end - time.perf_counter()))
        self.mark("1")

    async def once(self) -> Stream | None:
        args = self.args
        async with self.session.post(args.url, data=self.body, headers=self.headers) as response:
            if response.status != 200:
                await response.read()
                raise Bad(f"HTTP {response.status}")
            if not args.stream:
                check_body(args.api, await response.read())
                return None
            stream = Stream()
            async for line in response.content:
                stream.line(line)
            if not stream.done or not stream.chunks:
                raise Bad("stream without [DONE]" if stream.chunks else "stream without events")
            return stream

    async def client(self) -> None:
        while (t0 := time.perf_counter()) < self.end:
            error = stream = None
            try:
                stream = await self.once()
            except Bad as exc:
                error = str(exc)
            except Exception as exc:  # connection errors, timeouts
                error = type(exc).__name__
            t1 = time.perf_counter()
            if not self.start <= t1 < self.end:
                continue
            if error is not None:
                self.errors[error] = self.errors.get(error, 0) + 1
                continue
            self.latencies.append(t1 - t0)
            if stream is not None:
                self.chunks += stream.chunks
                self.ttfc.append(stream.first - t0)

    def result(self) -> dict[str, Any]:
        args = self.args
        span = self.end - self.start
        latencies, ttfc = sorted(self.latencies), sorted(self.ttfc)
        ok = len(latencies)
        result: dict[str, Any] = {
            "label": args.label,
            "api": args.api,
            "stream": args.stream,
            "concurrency": args.concurrency,
            "window_s": round(span, 3),
            "ok": ok,
            "errors": sum(self.errors.values()),
            "error_kinds": self.errors,
            "rps": round(ok / span, 1),
            "p50_ms": ms(percentile(latencies, 50)),
            "p99_ms": ms(percentile(latencies, 99)),
        }
        if args.stream:
            result["chunks_per_s"] = round(self.chunks / span, 1)
            result["chunks_per_stream"] = round(self.chunks / ok, 2) if ok else None
            result["ttfc_p50_ms"] = ms(percentile(ttfc, 50))
        for name in ("load", *self.watch):
            result[f"{name}_cpu"] = round((self.marks[f"{name}1"] - self.marks[f"{name}0"]) / span, 3)
        return result


async def run(args: argparse.Namespace) -> dict[str, Any]:
    load = Load(args)
    timer = asyncio.ensure_future(load.window())
    await asyncio.gather(*(load.client() for _ in range(args.concurrency)))
    await timer
    await load.session.close()
    return load.result()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", required=True, help="the full endpoint URL")
    parser.add_argument("--api", choices=("chat", "completions"), default="chat")
    parser.add_argument("--key", default="none")
    parser.add_argument("--model", required=True)
    parser.add_argument("--prompt", default="Say hello.", help="the user message (chat)")
    parser.add_argument("--prompt-ids", default="", help="comma-separated prompt token ids (completions)")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("-c", "--concurrency", type=int, default=1)
    parser.add_argument("-t", "--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--watch", action="append", default=[], metavar="NAME=PID")
    parser.add_argument("--label", default="")
    args = parser.parse_args()
    if args.api == "completions" and not args.prompt_ids:
        parser.error("--api completions needs --prompt-ids")
    import uvloop

    result = uvloop.run(run(args))
    sys.stdout.buffer.write(orjson.dumps(result) + b"\n")


if __name__ == "__main__":
    main()
