"""Reference implementations of the peers' block hashes (kvtier/key_profile.h), written from their
documented definitions with the libraries the peers themselves use: cbor2 (vLLM's encoder),
hashlib, xxhash. The C++ profiles are checked against these, through profile_vectors.tsv and the
`kvtier keys --profile` command."""
import hashlib
import struct

import cbor2
import xxhash

DYNAMO_SEED = 1337
FNV_OFFSET = 14695981039346656037
FNV_PRIME = 1099511628211


def _blocks(tokens, block_tokens):
    return [tokens[i * block_tokens:(i + 1) * block_tokens] for i in range(len(tokens) // block_tokens)]


def vllm_none_hash(seed):
    return hashlib.sha256(cbor2.dumps(seed, canonical=True)).digest()


def vllm_digests(tokens, block_tokens, seed, lora_name="", cache_salt="", lora_path=""):
    """vLLM's sha256_cbor: hash((parent, tuple(tokens), extra_keys)), extra_keys None when empty,
    else its entries tagged by source (vLLM 0.32): ("lora", name, path), ("cache_salt", salt) on
    the first block."""
    parent, out = vllm_none_hash(seed), []
    for i, block in enumerate(_blocks(tokens, block_tokens)):
        extra = ([("lora", lora_name, lora_path)] if lora_name else []) + (
            [("cache_salt", cache_salt)] if i == 0 and cache_salt else [])
        parent = hashlib.sha256(cbor2.dumps((parent, tuple(block), tuple(extra) if extra else None),
                                            canonical=True)).digest()
        out.append(parent)
    return out


def vllm_wire(digest):
    return int.from_bytes(digest[-8:], "big")


def fnv64a(data):
    h = FNV_OFFSET
    for b in data:
        h = ((h ^ b) * FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
    return h


def llmd_root(seed, name):
    """llm-d-kv-cache's getInitHash: the seed's FNV-64a, then [that, null, model or LoRA name]."""
    return fnv64a(cbor2.dumps([fnv64a(seed.encode()), None, name], canonical=True))


def llmd_hashes(tokens, block_tokens, seed, name):
    parent, out = llmd_root(seed, name), []
    for block in _blocks(tokens, block_tokens):
        parent = fnv64a(cbor2.dumps([parent, list(block), None], canonical=True))
        out.append(parent)
    return out


def dynamo_seed(lora_name="", cache_salt=""):
    """Dynamo's compute_salt_hash: 1337, plus the LoRA name's XXH3 (seed 0) and the salt's (seed 1)."""
    seed = DYNAMO_SEED
    if lora_name:
        seed += xxhash.xxh3_64_intdigest(lora_name.encode(), seed=0)
    if cache_salt:
        seed += xxhash.xxh3_64_intdigest(cache_salt.encode(), seed=1)
    return seed & 0xFFFFFFFFFFFFFFFF


def dynamo_block_hashes(tokens, block_tokens, lora_name="", cache_salt=""):
    seed = dynamo_seed(lora_name, cache_salt)
    return [xxhash.xxh3_64_intdigest(struct.pack(f"<{len(b)}I", *b), seed=seed) for b in _blocks(tokens, block_tokens)]


def dynamo_hashes(tokens, block_tokens, lora_name="", cache_salt=""):
    out = []
    for local in dynamo_block_hashes(tokens, block_tokens, lora_name, cache_salt):
        if out:
            local = xxhash.xxh3_64_intdigest(struct.pack("<QQ", out[-1], local), seed=DYNAMO_SEED)
        out.append(local)
    return out


def hashes(profile, tokens, block_tokens, seed="", lora_name="", cache_salt="", model="", lora_path=""):
    if profile == "vllm_sha256_cbor":
        return [vllm_wire(d) for d in vllm_digests(tokens, block_tokens, seed, lora_name, cache_salt, lora_path)]
    if profile == "llmd_fnv64_cbor":
        return llmd_hashes(tokens, block_tokens, seed, lora_name or model)
    if profile == "dynamo_xxh3":
        return dynamo_hashes(tokens, block_tokens, lora_name, cache_salt)
    raise ValueError(profile)
