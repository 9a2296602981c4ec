"""Markdown tables and the goal check of ``bench/gateway.py`` (stdlib only).

A gateway's floor is the upstream it routes to, measured alone: ``+p50`` is the gateway's p50 minus
its floor's at the same concurrency. ``per gw core`` divides a rate by the gateway's CPU use in
cores (from /proc), so that it reads the same whether or not the gateway saturated its core and
whatever else ran on the machine; ``x litellm`` compares those per-core rates.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
from typing import Any

FLOOR = {"litellm": "upstream-chat", "thinkserve": "upstream-tokens", "thinkserve-before": "upstream-tokens"}
GOAL_RPS, GOAL_P50_MS, GOAL_CHUNKS = 12.0, 0.7, 15.0
PATHS = {
    "upstream": 'remote engine (kind = "remote") -> upstream-tokens',
    "fake": 'in-process scripted engine (kind = "fake"); no upstream: --upstream is not in this CLI',
}

Row = dict[str, Any]


def machine(args: argparse.Namespace, path: str) -> dict[str, Any]:
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "?")
    except OSError:
        pass
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "load": os.getloadavg()[0],
        "python": platform.python_version(),
        "path": path,
        "gateway_cpu": args.gateway_cpu,
        "harness_cpu": args.harness_cpu,
        "duration": args.duration,
        "warmup": args.warmup,
    }


def median_row(rows: list[Row]) -> Row:
    """One cell from its rounds (``gateway.py --rounds``): each figure the median of its rounds,
    requests and errors summed, and ``rounds`` how many there were."""
    out: Row = dict(rows[0])
    for name in rows[0]:
        if name in ("ok", "errors"):
            out[name] = sum(r[name] for r in rows)
        elif name == "error_kinds":
            kinds: dict[str, int] = {}
            for r in rows:
                for kind, n in r[name].items():
                    kinds[kind] = kinds.get(kind, 0) + n
            out[name] = kinds
        elif name != "concurrency":
            present = [r[name] for r in rows if r.get(name) is not None]
            if present and all(isinstance(v, float | int) and not isinstance(v, bool) for v in present):
                out[name] = statistics.median(present)
    out["rounds"] = len(rows)
    return out


def one_line(row: Row) -> str:
    text = f"{row['label']:>15} {'stream' if row['stream'] else 'plain':>6} C={row['concurrency']:<3}"
    text += f" req/s={row['rps']} p50={row['p50_ms']} p99={row['p99_ms']}"
    if row["stream"]:
        text += f" chunks/s={row['chunks_per_s']}"
    cpus = " ".join(f"{k[:-4]}={v}" for k, v in row.items() if k.endswith("_cpu"))
    return f"{text} errors={row['errors']} cpu: {cpus}"


def _f(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "–"
    if abs(value) >= 1000 and digits <= 1:
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}"


def _per_core(row: Row, key: str) -> float | None:
    cpu = row.get("gw_cpu")
    return row[key] / cpu if cpu else None


def _cpu_ms(row: Row) -> str:
    cpu = row.get("gw_cpu")
    return _f(cpu / row["rps"] * 1000, 2) if cpu and row["rps"] else "–"


def _index(rows: list[Row]) -> dict[tuple[str, bool, int], Row]:
    return {(r["label"], r["stream"], r["concurrency"]): r for r in rows}


def _extra(row: Row, rows: dict[tuple[str, bool, int], Row], rate: str) -> tuple[str, str]:
    """``+p50`` over the floor and the per-core ratio to LiteLLM."""
    key = (row["label"], row["stream"], row["concurrency"])
    floor = rows.get((FLOOR.get(row["label"], ""), key[1], key[2]))
    added = _f(row["p50_ms"] - floor["p50_ms"], 2) if floor and row["p50_ms"] is not None else "–"
    ratio = "–"
    litellm = rows.get(("litellm", key[1], key[2]))
    if row["label"].startswith("thinkserve") and litellm:
        mine, theirs = _per_core(row, rate), _per_core(litellm, rate)
        if mine and theirs:
            ratio = f"{mine / theirs:.1f}x"
    return added, ratio


def markdown(meta: dict[str, Any], rows: list[Row]) -> str:
    index = _index(rows)
    out = [
        f"Run {meta['date']}: {meta['nproc']} CPUs ({meta['cpu']}), load average {meta['load']:.2f} at "
        f"the start, Python {meta['python']}, LiteLLM {meta.get('litellm', '?')}. Gateway on cpu "
        f"{meta['gateway_cpu']}, load generator and upstream on cpu {meta['harness_cpu']}; "
        f"{meta['duration']:g} s windows after {meta['warmup']:g} s of warm-up; the reply is "
        f"{meta.get('chunks', '?')} tokens, the thinkserve prompt {meta.get('prompt_tokens', '?')} tokens.",
        "",
        f"thinkserve path measured: **{PATHS[meta['path']]}**.",
        "",
        "Non-streaming:",
        "",
        "| target | C | req/s | gw CPU | gw CPU ms/req | req/s per gw core | x litellm | p50 ms | p99 ms "
        "| +p50 ms | harness CPU | errors |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        if row["stream"]:
            continue
        added, ratio = _extra(row, index, "rps")
        out.append(
            f"| {row['label']} | {row['concurrency']} | {_f(row['rps'])} | {_f(row.get('gw_cpu'), 2)} "
            f"| {_cpu_ms(row)} | {_f(_per_core(row, 'rps'))} | {ratio} | {_f(row['p50_ms'], 2)} "
            f"| {_f(row['p99_ms'], 2)} "
            f"| {added} | {_f(row['load_cpu'] + row['up_cpu'], 2)} | {row['errors']} |"
        )
    out += [
        "",
        "Streaming:",
        "",
        "| target | C | streams/s | chunks/s | gw CPU | chunks/s per gw core | x litellm | p50 ms | p99 ms "
        "| +p50 ms | TTFC p50 ms | harness CPU | errors |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        if not row["stream"]:
            continue
        added, ratio = _extra(row, index, "chunks_per_s")
        out.append(
            f"| {row['label']} | {row['concurrency']} | {_f(row['rps'])} | {_f(row['chunks_per_s'])} "
            f"| {_f(row.get('gw_cpu'), 2)} | {_f(_per_core(row, 'chunks_per_s'))} | {ratio} "
            f"| {_f(row['p50_ms'], 2)} | {_f(row['p99_ms'], 2)} | {added} | {_f(row['ttfc_p50_ms'], 2)} "
            f"| {_f(row['load_cpu'] + row['up_cpu'], 2)} | {row['errors']} |"
        )
    out += ["", *goals(index)]
    return "\n".join(out)


def goals(index: dict[tuple[str, bool, int], Row]) -> list[str]:
    """The issue's three goals, from the rows of this run. Rates compare each gateway's best
    per-core rate over the concurrencies run (its efficiency where it did best), not one cell: a
    gateway whose tail collapses at one concurrency is not judged by that cell alone."""
    lines = ["Goals (one gateway core, ratios from this run):", ""]

    def best(label: str, stream: bool, rate: str) -> tuple[float, int] | None:
        cells = [
            (value, c)
            for (name, s, c), row in index.items()
            if name == label and s == stream and (value := _per_core(row, rate))
        ]
        return max(cells) if cells else None

    for label in ("thinkserve", "thinkserve-before"):
        for stream, rate, what, goal in (
            (False, "rps", "req/s per gateway core", GOAL_RPS),
            (True, "chunks_per_s", "streamed chunks/s per gateway core", GOAL_CHUNKS),
        ):
            mine, theirs = best(label, stream, rate), best("litellm", stream, rate)
            if mine and theirs:
                ratio = mine[0] / theirs[0]
                lines.append(
                    f"- {what}, best of each: {label} {_f(mine[0])} (C={mine[1]}), LiteLLM "
                    f"{_f(theirs[0])} (C={theirs[1]}): {ratio:.1f}x (goal >= {goal:g}x): "
                    + ("met" if ratio >= goal else "NOT met")
                )
        ts, floor = index.get((label, False, 1)), index.get(("upstream-tokens", False, 1))
        if ts and floor:
            added = ts["p50_ms"] - floor["p50_ms"]
            cpu_ms = ts["gw_cpu"] / ts["rps"] * 1000 if ts.get("gw_cpu") and ts["rps"] else None
            lines.append(
                f"- p50 added at C=1 (non-streaming), {label}: +{added:.2f} ms over upstream-tokens "
                f"(goal <= +{GOAL_P50_MS} ms): "
                + ("met" if added <= GOAL_P50_MS else "NOT met")
                + (f"; the gateway's own CPU per request there: {cpu_ms:.2f} ms" if cpu_ms else "")
            )
    return lines
