"""kvtier's `vllm_sha256_cbor` key profile against vLLM's own block hasher (vLLM 0.32's
`get_request_block_hasher` over real `Request` objects, sha256_cbor): the same digests for random
prompts and block sizes, with and without a cache salt and a LoRA adapter (which vLLM 0.32 hashes
as tagged extra keys, the adapter's path included), for a PYTHONHASHSEED and for vLLM's default
seed when none is set."""

from __future__ import annotations

import json
import os
import random
import subprocess

from engine_support import BIN


def kvtier_digests(token_ids: list[int], block: int, seed: str, salt: str, lora: str, lora_path: str) -> list[str]:
    out = subprocess.run(
        [os.path.join(BIN, "kvtier"), "keys", "--profile", "vllm_sha256_cbor", "--block-tokens", str(block),
         "--hash-seed", seed, "--salt", salt, "--lora-name", lora, "--lora-path", lora_path, "--tokens", "-", "--json"],
        input=" ".join(map(str, token_ids)), capture_output=True, text=True, timeout=30, check=True)
    return json.loads(out.stdout)["digests"]


def vllm_digests(token_ids: list[int], block: int, seed: str | None, salt: str, lora: str, lora_path: str) -> list[str]:
    from vllm import SamplingParams
    from vllm.lora.request import LoRARequest
    from vllm.utils.hashing import sha256_cbor
    from vllm.v1.core import kv_cache_utils
    from vllm.v1.request import Request

    saved = os.environ.pop("PYTHONHASHSEED", None)
    try:
        if seed is not None:
            os.environ["PYTHONHASHSEED"] = seed
        kv_cache_utils.init_none_hash(sha256_cbor)
        request = Request(
            request_id="r",
            prompt_token_ids=token_ids,
            sampling_params=SamplingParams(max_tokens=1),
            pooling_params=None,
            lora_request=LoRARequest(lora, 1, lora_path) if lora else None,
            cache_salt=salt or None,
            block_hasher=kv_cache_utils.get_request_block_hasher(block, sha256_cbor),
        )
        return [bytes(h).hex() for h in request.block_hashes]
    finally:
        os.environ.pop("PYTHONHASHSEED", None)
        if saved is not None:
            os.environ["PYTHONHASHSEED"] = saved


def test_the_profile_gives_vllms_own_block_hashes():
    rng = random.Random(32)
    for case in range(16):
        block = rng.choice([1, 16, 32])
        seed = rng.choice(["0", "42", None])
        salt = rng.choice(["", "tenant-a"])
        lora, lora_path = rng.choice([("", ""), ("sql-lora", "/models/sql-lora"), ("adapter-b", "/srv/b")])
        prompt = [rng.randint(0, 50000) for _ in range(rng.randint(1, 4 * block + 3))]
        ours = kvtier_digests(prompt, block, "vllm-none-hash" if seed is None else seed, salt, lora, lora_path)
        assert ours == vllm_digests(prompt, block, seed, salt, lora, lora_path), (case, block, seed, salt, lora)
