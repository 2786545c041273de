"""The key format from outside C++: the Python reference reproduces the golden vectors, and the
`kvtier keys` binary agrees with the reference on random namespaces and prompts."""
import json
import os
import random
import subprocess

import pytest

import key_reference as ref

HERE = os.path.dirname(os.path.abspath(__file__))
KVTIER = os.path.join(os.environ.get("KVTIER_BIN_DIR", ""), "kvtier")


def golden_cases():
    with open(os.path.join(HERE, "golden_vectors.tsv"), encoding="utf-8") as f:
        rows = [line.rstrip("\n").split("\t") for line in f if line.strip() and not line.startswith("#")]
    header, body = rows[0], rows[1:]
    return [dict(zip(header, row)) for row in body]


@pytest.mark.parametrize("case", golden_cases(), ids=lambda c: c["name"])
def test_reference_reproduces_golden_vectors(case):
    root = ref.namespace_root(case["model_id"], case["adapter_id"], case["cache_salt"], case["dtype"],
                              int(case["block_tokens"]), int(case["num_layers"]), int(case["num_kv_heads"]),
                              int(case["head_dim"]), int(case["kv_planes"]))
    assert root.hex() == case["root"]
    keys = ref.chain(root, ref.expand_tokens(case["tokens"]), int(case["block_tokens"]))
    assert ",".join(k.hex() for k in keys) == case["keys"]


def run_cli(args, stdin=None):
    return subprocess.run([KVTIER, "keys", *args], input=stdin, capture_output=True, text=True, timeout=30)


@pytest.mark.skipif("KVTIER_BIN_DIR" not in os.environ, reason="run through ctest, which sets KVTIER_BIN_DIR")
@pytest.mark.parametrize("seed", range(12))
def test_cli_agrees_with_reference_on_random_inputs(seed):
    rng = random.Random(seed)
    model = rng.choice(["m", "Qwen/Qwen3-32B", "deepseek-ai/DeepSeek-V3", "模型"])
    adapter = rng.choice(["", "lora-1"])
    salt = rng.choice(["", "tenant-a", "x" * 100])
    dtype = rng.choice(list(ref.DTYPE_CODES))
    block = rng.choice([1, 2, 16, 64, 256, 1024, 1025])
    layers, heads, dim, planes = rng.randint(1, 64), rng.randint(1, 16), rng.choice([64, 128, 576]), rng.choice([1, 2])
    tokens = [rng.getrandbits(32) for _ in range(rng.randint(0, 4 * block + 3))]
    args = ["--model", model, "--adapter", adapter, "--salt", salt, "--dtype", dtype, "--block-tokens", str(block),
            "--layers", str(layers), "--kv-heads", str(heads), "--head-dim", str(dim), "--kv-planes", str(planes),
            "--tokens", "-", "--json"]
    out = run_cli(args, stdin=" ".join(map(str, tokens)))
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    root = ref.namespace_root(model, adapter, salt, dtype, block, layers, heads, dim, planes)
    assert got["root"] == root.hex()
    assert got["keys"] == [k.hex() for k in ref.chain(root, tokens, block)]
    assert got["format_version"] == ref.FORMAT_VERSION


@pytest.mark.skipif("KVTIER_BIN_DIR" not in os.environ, reason="run through ctest, which sets KVTIER_BIN_DIR")
@pytest.mark.parametrize("args,message", [
    (["--tokens", "1,2,x"], "not a uint32 token id"),
    (["--tokens", "4294967296"], "not a uint32 token id"),
    (["--tokens", "1", "--dtype", "fp64"], "unknown kv dtype"),
    (["--tokens", "1", "--block-tokens", "0"], "block_tokens"),
    (["--tokens", "1", "--model", ""], "model_id must not be empty"),
])
def test_cli_rejects_bad_input_clearly(args, message):
    out = run_cli(args)
    assert out.returncode == 2
    assert message in out.stderr
