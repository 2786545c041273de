"""Writes a small Llama-architecture model with random weights (transformers' save_pretrained), for
the engine tests and bench/engine-bench: nothing can be downloaded on these machines, and vLLM loads
a model directory like any other. Prompts are given as token ids (no tokenizer).

`make_model.py DIR [--layers N] [--seed S]`, or `write_model(dir, ...)` from Python.
"""

from __future__ import annotations

import argparse
import os

# The shape the tests use: 4 query heads and 2 KV heads of 64 (grouped-query attention, like the
# Llama 3 family), bf16, a vocabulary of a few thousand.
DEFAULTS = dict(vocab=4096, hidden=256, intermediate=768, layers=4, heads=4, kv_heads=2)
# bench/engine-bench's model: larger, so that prefill, not the engine's per-step overhead, is what
# a cache hit saves (as with real models), and still quick on two cores.
BENCH = dict(vocab=4096, hidden=512, intermediate=1536, layers=8, heads=8, kv_heads=2)


def token_ids(n: int, seed: int, vocab: int = DEFAULTS["vocab"]) -> list[int]:
    """n token ids from a seeded generator, above the model's special ids (0-2): prompts for the
    tests and the benchmark, the same on every run."""
    state = seed * 2654435761 % (1 << 32) or 1
    out = []
    for _ in range(n):
        state = (state * 1103515245 + 12345) % (1 << 31)
        out.append(3 + state % (vocab - 3))
    return out


def write_model(path: str, *, layers: int | None = None, seed: int = 0, shape: dict | None = None) -> str:
    """Writes the model into `path` (created) unless a model is already there; returns `path`."""
    shape = dict(shape or DEFAULTS)
    if layers is not None:
        shape["layers"] = layers
    if os.path.exists(os.path.join(path, "config.json")):
        return path
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=shape["vocab"],
        hidden_size=shape["hidden"],
        intermediate_size=shape["intermediate"],
        num_hidden_layers=shape["layers"],
        num_attention_heads=shape["heads"],
        num_key_value_heads=shape["kv_heads"],
        max_position_embeddings=8192,
        tie_word_embeddings=False,
        bos_token_id=1,
        eos_token_id=2,
    )
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    # Random weights at the default init scale give near-uniform logits, where bf16 ties would make
    # greedy output fragile; a wider output layer makes the argmax clear.
    with torch.no_grad():
        model.lm_head.weight.mul_(8.0)
    os.makedirs(path, exist_ok=True)
    model.save_pretrained(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir")
    parser.add_argument("--layers", type=int)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bench", action="store_true", help="the benchmark's larger shape")
    args = parser.parse_args()
    print(write_model(args.dir, layers=args.layers, seed=args.seed, shape=BENCH if args.bench else DEFAULTS))


if __name__ == "__main__":
    main()
