"""The peers' block hashes from outside C++: the reference (profile_reference.py: cbor2, hashlib,
xxhash, as vLLM, llm-d and Dynamo compute them) reproduces profile_vectors.tsv and the published
NONE_HASH, and `kvtier keys --profile` agrees with it on random prompts."""
import json
import os
import random
import subprocess

import pytest

import key_reference
import profile_reference as ref

HERE = os.path.dirname(os.path.abspath(__file__))
KVTIER = os.path.join(os.environ.get("KVTIER_BIN_DIR", ""), "kvtier")
PROFILES = ["vllm_sha256_cbor", "llmd_fnv64_cbor", "dynamo_xxh3"]


def vector_cases():
    with open(os.path.join(HERE, "profile_vectors.tsv"), encoding="utf-8") as f:
        rows = [line.rstrip("\n").split("\t") for line in f if line.strip() and not line.startswith("#")]
    header, body = rows[0], rows[1:]
    return [dict(zip(header, row)) for row in body]


def test_vllm_none_hash_for_seed_zero_is_the_published_value():
    assert ref.vllm_none_hash("0").hex() == "4e1195df020de59e0d65a33a4279f1183e7ae4e5d980e309f8b55adff2e61c3e"


@pytest.mark.parametrize("case", vector_cases(), ids=lambda c: c["name"])
def test_reference_reproduces_the_vectors(case):
    tokens = key_reference.expand_tokens(case["tokens"])
    b = int(case["block_tokens"])
    got = ref.hashes(case["profile"], tokens, b, case["hash_seed"], case["lora_name"], case["cache_salt"],
                     case["model"], case["lora_path"])
    assert ",".join(map(str, got)) == case["hashes"]
    if case["profile"] == "vllm_sha256_cbor":
        digests = ref.vllm_digests(tokens, b, case["hash_seed"], case["lora_name"], case["cache_salt"],
                                   case["lora_path"])
        assert ",".join(d.hex() for d in digests) == case["digests"]


@pytest.mark.skipif("KVTIER_BIN_DIR" not in os.environ, reason="run through ctest, which sets KVTIER_BIN_DIR")
@pytest.mark.parametrize("seed", range(15))
def test_cli_agrees_with_reference_on_random_prompts(seed):
    rng = random.Random(1000 + seed)
    profile = PROFILES[seed % len(PROFILES)]
    block = rng.choice([1, 4, 16, 64, 512])
    hash_seed = rng.choice(["", "0", "42", "seed with spaces"]) if profile != "dynamo_xxh3" else ""
    lora = rng.choice(["", "sql-lora"])
    salt = rng.choice(["", "tenant-a"]) if profile != "llmd_fnv64_cbor" else ""
    model = rng.choice(["kvtier-demo/llama-3.2-1b", "Qwen/Qwen3-0.6B"])
    lora_path = rng.choice(["", "/models/sql-lora"]) if profile == "vllm_sha256_cbor" and lora else ""
    tokens = [rng.choice([rng.getrandbits(32), rng.randint(0, 300)]) for _ in range(rng.randint(0, 4 * block + 3))]
    args = ["keys", "--profile", profile, "--block-tokens", str(block), "--hash-seed", hash_seed, "--lora-name", lora,
            "--salt", salt, "--model", model, "--lora-path", lora_path, "--tokens", "-", "--json"]
    out = subprocess.run([KVTIER, *args], input=" ".join(map(str, tokens)), capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["hashes"] == ref.hashes(profile, tokens, block, hash_seed, lora, salt, model, lora_path)
    if profile == "vllm_sha256_cbor":
        assert got["digests"] == [d.hex() for d in ref.vllm_digests(tokens, block, hash_seed, lora, salt, lora_path)]


@pytest.mark.skipif("KVTIER_BIN_DIR" not in os.environ, reason="run through ctest, which sets KVTIER_BIN_DIR")
def test_cli_rejects_extra_keys_a_profile_lacks():
    for profile, flag, said in [("llmd_fnv64_cbor", "--salt", "cache_salt keys vLLM's and Dynamo's hashes")]:
        out = subprocess.run([KVTIER, "keys", "--profile", profile, flag, "t", "--tokens", "1"],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 2
        assert said in out.stderr
