"""bench/engine-bench: time to first token of vLLM's CPU build on a multi-turn conversation workload,
in one run, on the same prompts: vLLM alone; vLLM with kvtier's connector; vLLM's own offloading
connector with kvtier as its spec; vLLM with its own CPU offloading; vLLM with LMCache's connector
and its local CPU backend. The engine's own KV pool holds
about two conversations, so by the time a conversation's next turn arrives its history has left the
engine and only a cache outside it can give it back.

Prints a table, then one JSON line (suite "engine"). Run with the engine virtualenv
(bench/engine-bench does): engine_bench.py [--quick] [--json] [--trace PATH] [--keep].
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import vllm_job  # noqa: E402
from kvtierd_process import Kvtierd  # noqa: E402
from make_model import BENCH, token_ids, write_model  # noqa: E402

BIN_DIR = os.environ.get("KVTIER_BIN_DIR", os.path.join(HERE, "..", "..", "build", "bin"))

BLOCK = 32
BLOCK_BYTES = BENCH["layers"] * 2 * BLOCK * BENCH["kv_heads"] * (BENCH["hidden"] // BENCH["heads"]) * 2
ENGINE_POOL_BYTES = 160 * BLOCK_BYTES  # 5120 tokens: about two conversations' histories
MAX_MODEL_LEN = 4096


def token_stream(seed: int, n: int) -> list[int]:
    return token_ids(n, seed, BENCH["vocab"])


def synthetic_workload(conversations: int, turns: int, user_tokens: int, output_tokens: int) -> list[dict]:
    """Conversations that share a system prompt, each turn adding a user message; turns of all
    conversations interleaved round-robin, as many users' chats reach one engine. The previous
    turn's answer is in the next prompt: its tokens come from the answer the engine gave, which the
    runner fills in (`history_of`)."""
    system = token_stream(7, 256)
    requests = []
    for turn in range(turns):
        for c in range(conversations):
            requests.append(
                {
                    "conversation": c,
                    "turn": turn,
                    "system": system if turn == 0 else None,
                    "user": token_stream(1000 * c + turn + 1, user_tokens),
                    "max_tokens": output_tokens,
                }
            )
    return requests


def trace_workload(path: str, limit: int, scale_tokens: int, output_tokens: int) -> list[dict]:
    """Mooncake's conversation trace: each 512-token block id becomes `scale_tokens` tokens derived
    from the id, so prompts sharing block ids share token prefixes, at the small model's scale."""
    requests = []
    with open(path) as f:
        for line in f:
            row = json.loads(line)
            tokens: list[int] = []
            for block_id in row["hash_ids"]:
                tokens.extend(token_stream(int(block_id) + 11, scale_tokens))
            tokens = tokens[: MAX_MODEL_LEN - output_tokens - 1]
            if len(tokens) < BLOCK + 1:
                continue
            requests.append({"tokens": tokens, "max_tokens": output_tokens})
            if len(requests) >= limit:
                break
    return requests


def build_prompts(workload: list[dict], answers: dict[tuple[int, int], list[int]]) -> list[dict]:
    """Token-id prompts of a synthetic workload, each turn holding the conversation so far. The
    answers are the ones vLLM alone gave (every engine then sees exactly the same prompts)."""
    history: dict[int, list[int]] = {}
    prompts = []
    for r in workload:
        if "tokens" in r:
            prompts.append({"tokens": r["tokens"], "max_tokens": r["max_tokens"]})
            continue
        c = r["conversation"]
        before = history.get(c, list(r["system"] or []))
        prompt = before + r["user"]
        prompts.append({"tokens": prompt[-(MAX_MODEL_LEN - r["max_tokens"] - 1) :], "max_tokens": r["max_tokens"]})
        history[c] = prompt + answers.get((c, r["turn"]), token_stream(50_000 + 100 * c + r["turn"], r["max_tokens"]))
    return prompts


class Runner:
    def __init__(self, workdir: str, model: str, timeout_s: float):
        self.workdir = workdir
        self.model = model
        self.python = sys.executable
        self.timeout_s = timeout_s  # per engine: a peer that stalls is reported, not waited for

    def run_if_it_caches(self, name: str, mode: str, prompts: list[dict], cold: list[dict], extra: dict | None = None,
                         env: dict | None = None) -> dict:
        """The workload, after a probe shows the peer runs here and gives a prompt's blocks back
        once its engine forgot them (a peer that fails or never hits is reported with its error)."""
        probe = {"tokens": token_stream(5, 8 * BLOCK + 1), "max_tokens": 2}
        phases = [
            {"prompts": [{"tokens": token_stream(3, 100), "max_tokens": 2}]},
            {"prompts": [probe]},
            {"reset_prefix_cache": True, "prompts": [probe]},
        ]
        checked = self.run(f"{name}-probe", mode, [], [], {**(extra or {}), "phases": phases}, env)
        if "error" in checked:
            return checked
        if checked["phases"][2]["requests"][0]["num_cached_tokens"] == 0:
            return {"error": "no hits: " + (checked.get("log_cause") or "it loaded nothing back"), "wall_s": checked["wall_s"]}
        return self.run(name, mode, prompts, cold, extra, env)

    def run(self, name: str, mode: str, prompts: list[dict], cold: list[dict], extra: dict | None = None,
            env: dict | None = None) -> dict:
        job = {
            "model": self.model,
            "mode": mode,
            "kv_cache_bytes": ENGINE_POOL_BYTES,
            "max_model_len": MAX_MODEL_LEN,
            "max_num_seqs": 4,
            "phases": [
                {"prompts": [{"tokens": token_stream(3, 100), "max_tokens": 2}]},  # warm-up, not measured
                {"prompts": cold},
                {"reset_prefix_cache": True, "prompts": prompts},
            ],
            **(extra or {}),
        }
        job_path = os.path.join(self.workdir, f"{name}.job.json")
        out_path = os.path.join(self.workdir, f"{name}.out.json")
        log_path = os.path.join(self.workdir, f"{name}.log")
        with open(job_path, "w") as f:
            json.dump(job, f)
        started = time.monotonic()
        tmpdir = os.path.join(self.workdir, f"{name}.tmp")  # vLLM's ipc sockets
        os.makedirs(tmpdir, exist_ok=True)
        shm_before = vllm_job.shm_entries()
        with open(log_path, "w") as log:
            proc = subprocess.Popen(
                [self.python, os.path.join(HERE, "vllm_job.py"), job_path, out_path],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "TMPDIR": tmpdir, **(env or {})},
                start_new_session=True,
            )
            try:
                rc = proc.wait(timeout=self.timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                rc = None
        vllm_job.remove_leftovers(shm_before)
        with open(log_path, errors="replace") as f:
            text = f.read()
        if rc != 0:
            cause = first_error(text) or (f"exited {rc}" if rc is not None else "no error logged")
            if rc is None:
                cause = f"did not finish the workload in {self.timeout_s:.0f} s ({cause})"
            return {"error": cause, "wall_s": time.monotonic() - started}
        with open(out_path) as f:
            result = json.load(f)
        result["wall_s"] = time.monotonic() - started
        result["log_cause"] = first_error(text)
        return result


def first_error(log: str) -> str | None:
    """The root cause vLLM reports, e.g. 'Worker failed with error ...'."""
    for pattern in (r"Worker failed with error '([^']+)'", r"^(RuntimeError: [^\n]+)", r"(\w+Error: [^\n]+)"):
        found = re.findall(pattern, log, re.MULTILINE)
        if found:
            return found[0].strip()
    return None


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def figures(result: dict) -> dict:
    if "error" in result:
        return {"error": result["error"]}
    cold, warm = result["phases"][1], result["phases"][2]
    ttft = [r["ttft_s"] * 1000 for r in warm["requests"]]
    engine_before, engine_after = cold["engine"], warm["engine"]
    computed = engine_after.get("prompt_tokens", 0) - engine_before.get("prompt_tokens", 0)
    computed -= engine_after.get("prefix_cache_hits", 0) - engine_before.get("prefix_cache_hits", 0)
    computed -= engine_after.get("external_prefix_cache_hits", 0) - engine_before.get("external_prefix_cache_hits", 0)
    return {
        "ttft_p50_ms": percentile(ttft, 0.5),
        "ttft_p90_ms": percentile(ttft, 0.9),
        # The first cold request still pays lazy set-up in some engines: left out.
        "cold_ttft_p50_ms": percentile([r["ttft_s"] * 1000 for r in cold["requests"][1:]], 0.5),
        "prefill_tokens_computed": int(computed),
        "external_hit_tokens": int(engine_after.get("external_prefix_cache_hits", 0) - engine_before.get("external_prefix_cache_hits", 0)),
        "token_ids": [r["token_ids"] for r in warm["requests"]],
        "connector": warm.get("connector"),
        "log_cause": result.get("log_cause"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description="TTFT of vLLM alone, with kvtier, vLLM's offloading and LMCache")
    parser.add_argument("--quick", action="store_true", help="a smaller workload (a few minutes)")
    parser.add_argument("--json", action="store_true", help="end with one JSON line (always printed)")
    parser.add_argument(
        "--trace",
        help="a Mooncake-format trace instead of the synthetic conversations (e.g. "
        "../shared/traces/conversation_trace.jsonl: its first 150 requests, or 60 with --quick)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the working directory (logs, results)")
    args = parser.parse_args()

    workdir = tempfile.mkdtemp(prefix="kvtier-engine-bench-")
    started = time.monotonic()
    node = f"engbench{os.getpid()}"
    daemon = None
    try:
        model = write_model(os.path.join(workdir, "model"), shape=BENCH)
        runner = Runner(workdir, model, timeout_s=240 if args.quick else 900)
        trace = args.trace
        if trace:
            workload = trace_workload(trace, limit=60 if args.quick else 150, scale_tokens=64, output_tokens=16)
            source = f"{os.path.basename(trace)} (first {len(workload)} requests, 512-token blocks as 64 tokens)"
        else:
            conversations, turns = (6, 5) if args.quick else (8, 8)
            workload = synthetic_workload(conversations, turns, user_tokens=384, output_tokens=32)
            source = f"synthetic: {conversations} conversations x {turns} turns, 384-token user turns, 32-token answers"
        cold = [{"tokens": token_stream(900 + i, 1024), "max_tokens": 8} for i in range(12)]

        # vLLM alone first: its answers become the next turns' history for every engine.
        answers: dict[tuple[int, int], list[int]] = {}
        prompts = build_prompts(workload, answers)
        alone = runner.run("alone", "alone", prompts, cold)
        if "error" in alone:
            raise SystemExit(f"engine-bench: vLLM alone failed: {alone['error']}")
        if "conversation" in workload[0]:
            for r, out in zip(workload, alone["phases"][2]["requests"]):
                answers[(r["conversation"], r["turn"])] = out["token_ids"]
            prompts = build_prompts(workload, answers)
            alone = runner.run("alone", "alone", prompts, cold)

        # kvtier as deployed: a kvtierd serving the node (1 GiB host tier, SSD behind it).
        daemon = Kvtierd(BIN_DIR, workdir, node, "kvtierbench", host_bytes="1GiB", ssd_bytes="2GiB", min_accesses=2)
        kvtier_settings = {"kvtier.node_name": node, "kvtier.shm_prefix": "kvtierbench"}
        # The control: vLLM with a connector that holds nothing (bench/engines/null_connector.py)
        # and a KV pool that keeps every conversation. vLLM takes another code path when any
        # connector is configured (greedy decode differs from a run without one in the last bf16
        # bits, and near-ties flip), so this is the run whose outputs kvtier's must equal: both
        # reuse the very KV of earlier turns, vLLM from its own pool, kvtier from the node.
        control = runner.run("control", "null_connector", prompts, cold, {"kv_cache_bytes": 1 << 30})
        lmcache_env = {"LMCACHE_LOCAL_CPU": "True", "LMCACHE_MAX_LOCAL_CPU_SIZE": "1", "LMCACHE_CHUNK_SIZE": str(BLOCK)}
        results = {
            "vllm_alone": alone,
            "kvtier": runner.run("kvtier", "kvtier", prompts, cold, {"kvtier": kvtier_settings}),
        }
        daemon.stop()
        # kvtier behind vLLM's offloading connector, on a fresh node of the same size.
        daemon = Kvtierd(BIN_DIR, workdir, node + "s", "kvtierbench", host_bytes="1GiB", ssd_bytes="2GiB", min_accesses=2)
        spec_settings = {"kvtier.node_name": node + "s", "kvtier.shm_prefix": "kvtierbench"}
        results["kvtier_offload"] = runner.run("kvtier_offload", "kvtier_offload", prompts, cold, {"kvtier": spec_settings})
        daemon.stop()
        daemon = None
        offload = {"offload_bytes": 1 << 30}
        results["vllm_offload"] = runner.run_if_it_caches("vllm_offload", "vllm_offload", prompts, cold, offload)
        results["lmcache"] = runner.run_if_it_caches("lmcache", "lmcache", prompts, cold, env=lmcache_env)
        figs = {name: figures(r) for name, r in results.items()}
        reference = figures(control)
        base = figs["vllm_alone"]
        kv = figs["kvtier"]

        def ratio(a: dict, b: dict, key: str = "ttft_p50_ms"):
            if "error" in a or "error" in b or not b.get(key):
                return None
            return a[key] / b[key]

        spec = figs["kvtier_offload"]
        summary = {
            "suite": "engine",
            "workload": source,
            "requests": len(prompts),
            "vllm_version": vllm_version(),
            "ttft_p50_vs_vllm_alone": ratio(kv, base),
            "ttft_p50_vs_vllm_offload": ratio(kv, figs["vllm_offload"]),
            "ttft_p50_vs_lmcache": ratio(kv, figs["lmcache"]),
            "miss_overhead": (kv["cold_ttft_p50_ms"] / base["cold_ttft_p50_ms"]) if "error" not in kv else None,
            "outputs_identical": ("error" not in kv) and kv["token_ids"] == reference["token_ids"],
            "outputs_identical_to_vllm_alone": same_fraction(kv, base),
            "control_ttft_p50_ms": round(reference["ttft_p50_ms"], 2),
            "ttft_p50_vs_control": ratio(kv, reference),
            "control_cold_ttft_p50_ms": round(reference["cold_ttft_p50_ms"], 2),
            "miss_overhead_vs_control": kv["cold_ttft_p50_ms"] / reference["cold_ttft_p50_ms"] if "error" not in kv else None,
            # kvtier as vLLM's offloading spec: the same figures
            "kvtier_offload_ttft_p50_vs_vllm_alone": ratio(spec, base),
            "kvtier_offload_miss_overhead": ratio(spec, base, "cold_ttft_p50_ms"),
            "kvtier_offload_outputs_identical": ("error" not in spec) and spec["token_ids"] == reference["token_ids"],
            "kvtier_offload_outputs_identical_to_vllm_alone": same_fraction(spec, base),
            "ttft_p50_connector_vs_offload_spec": ratio(kv, spec),
        }
        for name, f in figs.items():
            if "error" in f:
                summary[f"{name}_error"] = f["error"]
                continue
            summary[f"{name}_ttft_p50_ms"] = round(f["ttft_p50_ms"], 2)
            summary[f"{name}_ttft_p90_ms"] = round(f["ttft_p90_ms"], 2)
            summary[f"{name}_prefill_tokens_computed"] = f["prefill_tokens_computed"]
        print_table({**figs, "control": reference}, summary, time.monotonic() - started)
        print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in summary.items()}))
        return 0
    finally:
        if daemon is not None:
            daemon.stop()
        if args.keep:
            print(f"engine-bench: kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def same_fraction(a: dict, b: dict) -> float | None:
    """Share of requests whose greedy output is the same in both runs."""
    if "error" in a or "error" in b:
        return None
    return sum(x == y for x, y in zip(a["token_ids"], b["token_ids"])) / max(1, len(a["token_ids"]))


def vllm_version() -> str:
    try:
        import vllm

        return vllm.__version__
    except ImportError:
        return "unknown"


def print_table(figs: dict, summary: dict, elapsed: float) -> None:
    print(f"engine-bench: {summary['workload']}; {summary['requests']} requests; vLLM {summary['vllm_version']} (CPU)")
    print("control: vLLM with a connector that holds nothing and a KV pool that keeps every conversation")
    print(f"{'engine':<16}{'TTFT p50 ms':>13}{'TTFT p90 ms':>13}{'cold p50 ms':>13}{'prefill computed':>18}  note")
    for name, f in figs.items():
        if "error" in f and "ttft_p50_ms" not in f:
            print(f"{name:<16}{'-':>13}{'-':>13}{'-':>13}{'-':>18}  did not run: {f['error'][:100]}")
            continue
        note = f"not a cache here: {f['error'][:80]}" if "error" in f else ""
        print(
            f"{name:<16}{f['ttft_p50_ms']:>13.1f}{f['ttft_p90_ms']:>13.1f}{f['cold_ttft_p50_ms']:>13.1f}"
            f"{f['prefill_tokens_computed']:>18}  {note}"
        )
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    print(
        f"kvtier vs vLLM alone {fmt(summary['ttft_p50_vs_vllm_alone'])} (target <= 0.5), "
        f"miss overhead {fmt(summary['miss_overhead'])} (<= 1.05; {fmt(summary['miss_overhead_vs_control'])} over the "
        f"control), outputs identical to the control {summary['outputs_identical']}, to vLLM alone "
        f"{fmt(summary['outputs_identical_to_vllm_alone'])}"
    )
    print(
        f"kvtier as vLLM's offloading spec: vs vLLM alone {fmt(summary['kvtier_offload_ttft_p50_vs_vllm_alone'])}, miss "
        f"overhead {fmt(summary['kvtier_offload_miss_overhead'])}, outputs identical to the control "
        f"{summary['kvtier_offload_outputs_identical']}, to vLLM alone "
        f"{fmt(summary['kvtier_offload_outputs_identical_to_vllm_alone'])}; connector over spec TTFT "
        f"{fmt(summary['ttft_p50_connector_vs_offload_spec'])}; {elapsed:.0f} s"
    )


if __name__ == "__main__":
    sys.exit(main())
