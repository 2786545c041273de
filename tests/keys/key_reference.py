"""Reference implementation of kvtier's key format (docs/keys.md), independent of the C++ code.

It is what a scheduler in Python would write from the spec alone, and the golden vectors in
golden_vectors.tsv were generated with it. Needs only the `xxhash` module (Debian: python3-xxhash).
"""
import struct

import xxhash

FORMAT_VERSION = 1
DTYPE_CODES = {"fp16": 1, "bf16": 2, "fp32": 3, "fp8_e4m3": 4, "fp8_e5m2": 5, "int8": 6}


def namespace_root(model_id, adapter_id, cache_salt, dtype, block_tokens, num_layers, num_kv_heads, head_dim,
                   kv_planes=2):
    """16-byte root key of a namespace."""
    enc = b"kvtier.key" + struct.pack("<I", FORMAT_VERSION)
    for field in (model_id, adapter_id, cache_salt):
        raw = field.encode("utf-8")
        enc += struct.pack("<I", len(raw)) + raw
    enc += struct.pack("<BIIIII", DTYPE_CODES[dtype], block_tokens, num_layers, num_kv_heads, head_dim, kv_planes)
    # digest() is XXH3-128's canonical form: high 64 bits big-endian, then low 64 bits big-endian.
    return xxhash.xxh3_128(enc).digest()


def chain(root, tokens, block_tokens):
    """16-byte keys of every full block of `tokens`, in order."""
    keys = []
    parent = root
    for i in range(len(tokens) // block_tokens):
        block = tokens[i * block_tokens:(i + 1) * block_tokens]
        parent = xxhash.xxh3_128(parent + struct.pack(f"<{block_tokens}I", *block)).digest()
        keys.append(parent)
    return keys


def expand_tokens(spec):
    """Token lists in golden_vectors.tsv: '1,2,3', 'seq:N' (0..N-1), 'lcg:SEED:N' or '' (none)."""
    if spec == "":
        return []
    if spec.startswith("seq:"):
        return list(range(int(spec[4:])))
    if spec.startswith("lcg:"):
        _, seed, n = spec.split(":")
        x, out = int(seed), []
        for _ in range(int(n)):
            x = (x * 1664525 + 1013904223) & 0xFFFFFFFF
            out.append(x)
        return out
    return [int(t) for t in spec.split(",")]
