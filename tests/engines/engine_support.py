"""What the engine tests share: the model they write, vLLM engine processes running jobs
(bench/engines/vllm_job.py), a real kvtierd, and a client of the node to look at what the engines
left there. Runs under the engine virtualenv's Python (scripts/engine-python)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from typing import Any

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "bench", "engines"))
sys.path.insert(0, os.path.join(ROOT, "tests", "support"))

import kvtier  # noqa: E402
import vllm_job  # noqa: E402
from kvtierd_process import Kvtierd as KvtierdProcess  # noqa: E402
from loopback import free_port  # noqa: E402,F401
from make_model import DEFAULTS, token_ids, write_model  # noqa: E402,F401

BIN = os.environ.get("KVTIER_BIN_DIR", os.path.join(ROOT, "build", "bin"))
JOB = os.path.join(ROOT, "bench", "engines", "vllm_job.py")
SCORE_NODES = os.path.join(ROOT, "tests", "engines", "score_nodes.py")
BLOCK = 32  # vLLM's CPU attention takes block sizes in multiples of 32
SHM_PREFIX = "kvtiereng"
# The connector's namespace tag for vLLM's CPU cache layout (kvtier.vllm_connector.CPU_LAYOUT_TAG).
CPU_LAYOUT_TAG = "kv=cpu-hkvnd"


def tokens(n: int, seed: int) -> list[int]:
    return token_ids(n, seed)


def whole_blocks_before_last(prompt: list[int]) -> int:
    """Tokens a cache can give vLLM for this prompt: its whole blocks, the last token excluded
    (vLLM computes at least one token to sample from)."""
    return (len(prompt) - 1) // BLOCK * BLOCK


def kvtier_settings(node: str, **more: Any) -> dict[str, Any]:
    settings = {"kvtier.node_name": node, "kvtier.shm_prefix": SHM_PREFIX}
    settings.update(more)
    return settings


class EngineJob:
    """One vLLM engine process running a job; `result()` waits for it."""

    def __init__(self, workdir: str, name: str, job: dict[str, Any], env: dict[str, str] | None = None):
        self.name = name
        self.job_path = os.path.join(workdir, f"{name}.job.json")
        self.out_path = os.path.join(workdir, f"{name}.out.json")
        self.log_path = os.path.join(workdir, f"{name}.log")
        with open(self.job_path, "w") as f:
            json.dump(job, f)
        self.log = open(self.log_path, "w")
        self.tmpdir = os.path.join(workdir, f"{name}.tmp")  # vLLM's ipc sockets, removed with the workdir
        os.makedirs(self.tmpdir, exist_ok=True)
        self.shm_before = vllm_job.shm_entries()
        environment = dict(os.environ)
        environment["TMPDIR"] = self.tmpdir
        environment.update(env or {})
        # Its own process group: a SIGKILL test kills the engine and all its processes at once.
        self.proc = subprocess.Popen(
            [sys.executable, JOB, self.job_path, self.out_path],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=environment,
            start_new_session=True,
        )

    def result(self, timeout: float = 600) -> dict[str, Any]:
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"engine {self.name} ran past {timeout} s; log:\n{self.tail()}")
        vllm_job.remove_leftovers(self.shm_before)
        if rc != 0:
            raise AssertionError(f"engine {self.name} exited {rc}; log:\n{self.tail()}")
        with open(self.out_path) as f:
            return json.load(f)

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=60)
        vllm_job.remove_leftovers(self.shm_before)

    def tail(self, lines: int = 60) -> str:
        self.log.flush()
        with open(self.log_path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])


def run_engine(workdir: str, name: str, job: dict[str, Any], timeout: float = 600, **kw) -> dict[str, Any]:
    return EngineJob(workdir, name, job, **kw).result(timeout)


_ALONE: dict[str, dict[str, Any]] = {}


def run_alone(model_dir: str, prompts: list[dict[str, Any]]) -> dict[str, Any]:
    """vLLM alone (no connector, no prefix caching: every token computed) on these prompts, one
    after another: the reference outputs. Run once per session for each list of prompts, which the
    connector's and the offloading spec's tests share."""
    key = json.dumps([model_dir, prompts])
    if key not in _ALONE:
        path = workdir("kvtier-engine-alone-")
        try:
            job = {"model": model_dir, "mode": "alone", "prefix_caching": False, "phases": [{"prompts": prompts}]}
            _ALONE[key] = run_engine(path, "alone", job)
        finally:
            remove(path)
    return _ALONE[key]


def prompt(tokens_: list[int], max_tokens: int = 8, cache_salt: str | None = None) -> dict[str, Any]:
    p: dict[str, Any] = {"tokens": tokens_, "max_tokens": max_tokens}
    if cache_salt:
        p["cache_salt"] = cache_salt
    return p


def node_client(node: str) -> kvtier.Client:
    return kvtier.Client(node, shm_prefix=SHM_PREFIX)


def namespace(client: kvtier.Client, model_dir: str, cache_salt: str = "") -> kvtier.Namespace:
    """The namespace the connector files the model's blocks under on a CPU engine."""
    return client.register_namespace(
        model_id=f"{model_dir}#{CPU_LAYOUT_TAG}",
        cache_salt=cache_salt,
        dtype="bf16",
        block_tokens=BLOCK,
        num_layers=DEFAULTS["layers"],
        num_kv_heads=DEFAULTS["kv_heads"],
        head_dim=DEFAULTS["hidden"] // DEFAULTS["heads"],
    )


def spec_keys(client: kvtier.Client, model_dir: str, prompt_tokens: list[int]) -> list[bytes]:
    """The kvtier keys kvtier's offloading spec files a prompt's whole blocks under on a CPU engine
    (no cache_salt or LoRA): vLLM's own sha256 block hashes, through the spec's own mapping."""
    from kvtier.vllm_offloading import block_key, register_namespace
    from vllm.utils.hashing import sha256
    from vllm.v1.core import kv_cache_utils
    from vllm.v1.kv_offload.base import make_offload_key

    kv_cache_utils.init_none_hash(sha256)
    head_dim = DEFAULTS["hidden"] // DEFAULTS["heads"]
    ns = register_namespace(
        client,
        model_id=model_dir,
        dtype="bfloat16",
        layout=CPU_LAYOUT_TAG,
        block_tokens=BLOCK,
        num_layers=DEFAULTS["layers"],
        block_bytes=DEFAULTS["layers"] * 2 * BLOCK * DEFAULTS["kv_heads"] * head_dim * 2,
    )
    keys, parent = [], None
    for i in range(len(prompt_tokens) // BLOCK):
        parent = kv_cache_utils.hash_block_tokens(sha256, parent, prompt_tokens[i * BLOCK : (i + 1) * BLOCK])
        keys.append(block_key(ns, make_offload_key(parent, 0)))  # KV-cache group 0
    return keys


def partly_on_ssd(client: kvtier.Client, prompts: list[list[int]], keys_of) -> tuple[int, list[bytes]]:
    """The first prompt whose whole blocks (all but the last token's) are all cached, some of them on
    SSD and not in host memory: (its index, its keys). Which prompts the daemon demoted and which a
    writer dropped for room (it waits 20 ms for the daemon, then drops) depends on timing."""
    seen = []
    for i, p in enumerate(prompts):
        keys = keys_of(p[: whole_blocks_before_last(p)])
        m = client.match(keys)
        seen.append(m)
        if m.overall == len(keys) and m.host < len(keys) and m.ssd > 0:
            return i, keys
    raise AssertionError(f"no prompt is cached whole with blocks on SSD: {seen}")


def destroy_node(node: str) -> None:
    try:
        kvtier.Client.destroy_node(node, shm_prefix=SHM_PREFIX)
    except kvtier.Error:  # not there
        pass
    for part in ("index", "host", "loads", "tokens"):
        try:
            os.unlink(f"/dev/shm/{SHM_PREFIX}-{node}-{part}")
        except FileNotFoundError:
            pass


class Kvtierd(KvtierdProcess):
    """A real kvtierd of this build on loopback ports, with a host tier and an SSD tier."""

    def __init__(self, workdir: str, name: str, host_bytes: str = "64MiB", ssd_bytes: str = "256MiB",
                 extra_config: str = ""):
        super().__init__(BIN, workdir, name, SHM_PREFIX, host_bytes=host_bytes, ssd_bytes=ssd_bytes,
                         extra_config=extra_config)


@contextlib.contextmanager
def kvtierd_in_workdir(prefix: str, name: str, host_bytes: str):
    """A Kvtierd in a scratch directory of its own: (daemon, directory), both gone after."""
    path = workdir(prefix)
    d = Kvtierd(path, name, host_bytes=host_bytes)
    try:
        yield d, path
    finally:
        d.stop()
        remove(path)


class VllmIndexer:
    """A kvtier-indexer of this build following one vLLM engine's KV-event stream (its PUB socket at
    `endpoint`, its replay socket at `replay_endpoint`), the engine's hashes read as vLLM's
    sha256_cbor with hash seed 0; ScoreNodes and ListNodes at `address`."""

    def __init__(self, path: str, model_id: str, block_tokens: int, engine: str, endpoint: str, replay_endpoint: str):
        self.address = f"127.0.0.1:{free_port()}"
        config = os.path.join(path, "indexer.yaml")
        with open(config, "w") as f:
            f.write(
                f"""
grpc_address: "{self.address}"
engine_namespaces:
  - {{model_id: {model_id}, key_profile: vllm_sha256_cbor, hash_seed: "0", block_tokens: {block_tokens}}}
vllm_engines:
  - {{name: {engine}, endpoint: "{endpoint}", replay_endpoint: "{replay_endpoint}", model_id: {model_id}}}
"""
            )
        self.log = open(os.path.join(path, "indexer.log"), "w+")
        self.proc = subprocess.Popen(
            [os.path.join(BIN, "kvtier-indexer"), "--config", config], stdout=self.log, stderr=subprocess.STDOUT
        )

    def score(self, model_id: str, token_ids: list[int]) -> dict[str, Any]:
        """ScoreNodes for the prompt, and ListNodes' counters per engine (tests/engines/score_nodes.py,
        run by Debian's Python: the engine virtualenv's protobuf is too new for the build's stubs)."""
        out = subprocess.run(
            ["/usr/bin/python3", SCORE_NODES, self.address, model_id, json.dumps(token_ids)],
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        )
        return json.loads(out.stdout)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)
        self.log.close()


def workdir(prefix: str) -> str:
    return tempfile.mkdtemp(prefix=prefix, dir=os.environ.get("KVTIER_TEST_TMP") or None)


def remove(path: str) -> None:
    if os.environ.get("KVTIER_KEEP_ENGINE_FILES"):  # for a look at the engines' logs and results
        print(f"kept {path}")
        return
    shutil.rmtree(path, ignore_errors=True)


# --- a kvtierd publishing vLLM-format events, and what it published ------------------------------

END_OF_REPLAY = b"\xff" * 8  # vLLM's replay end marker


def publishing_node_config(endpoint: str, replay: str, pod: str, model_id: str, layout: dict[str, Any],
                           variants: list[str]) -> str:
    """kvtierd configuration sections publishing vLLM-format events on `endpoint` (replay on
    `replay`, "" for none) under `pod`, for `model_id` in each variant (YAML fields such as
    "cache_salt: tenant-a"; "" for the plain namespace)."""
    layout_yaml = "{" + ", ".join(f"{k}: {v}" for k, v in layout.items()) + "}"
    namespaces = "".join(
        f"  - {{model_id: {model_id}, {variant + ', ' if variant else ''}layout: {layout_yaml}}}\n" for variant in variants
    )
    return f"""
events:
  vllm: {{enabled: true, endpoint: "{endpoint}", replay_endpoint: "{replay}", pod_ids: "{pod}"}}
namespaces:
{namespaces}"""


def put_chain(client: kvtier.Client, ns: kvtier.Namespace, chain: list[int]) -> None:
    """Puts the chain's whole blocks, each with its token ids (which the node publishes)."""
    block = ns.block_tokens
    keys = client.keys(ns, chain)
    data = bytes(ns.block_bytes)
    for i, key in enumerate(keys):
        client.put(ns, key, keys[i - 1] if i else ns.root, data, tokens=chain[i * block:(i + 1) * block])


def vllm_replay(endpoint: str) -> list[tuple[str, bytes]]:
    """Every message a vLLM-format publisher (an engine or kvtierd) has buffered, (topic, payload),
    from its replay socket."""
    import zmq

    ctx = zmq.Context()
    dealer = ctx.socket(zmq.DEALER)
    dealer.setsockopt(zmq.RCVTIMEO, 10000)
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.connect(endpoint)
    try:
        dealer.send_multipart([b"", (0).to_bytes(8, "big")])
        out = []
        while True:
            _, topic, seq, payload = dealer.recv_multipart()
            if seq == END_OF_REPLAY:
                return out
            out.append((topic.decode(), payload))
    finally:
        dealer.close()
        ctx.term()
