"""One vLLM engine process running a job, for the engine tests and bench/engine-bench.

Run with the engine virtualenv's Python (scripts/engine-python): `vllm_job.py JOB.json OUT.json`.
The job names the model directory, how the engine is set up (kvtier's connector, vLLM's own CPU
offloading, LMCache, or none) and phases of prompts given as token ids. Each phase's requests run
one after another (a conversation's turns arrive one at a time), or together as one batch. The result
holds, per request, the generated token ids, their log-probs, the prefix tokens vLLM did not compute
(num_cached_tokens) and the time to first token; and per phase the engine's prefix-cache counters and
the kvtier connector's counters from the worker process.

A phase may wait for a file to appear before it starts and create one when it ends, so a test can
run two engines side by side and order their steps.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any




def _transfer_config(job: dict[str, Any]):
    from vllm.config import KVTransferConfig

    mode = job.get("mode", "alone")
    if mode == "alone":
        return None
    if mode == "kvtier":
        return KVTransferConfig(
            kv_connector="KvtierConnector",
            kv_connector_module_path="kvtier.vllm_connector",
            kv_role="kv_both",
            kv_connector_extra_config=dict(job.get("kvtier", {})),
        )
    if mode == "kvtier_offload":  # vLLM's own offloading connector with kvtier as its spec
        return KVTransferConfig(
            kv_connector="OffloadingConnector",
            kv_role="kv_both",
            kv_connector_extra_config={
                "spec_name": "KvtierOffloadingSpec",
                "spec_module_path": "kvtier.vllm_offloading",
                **job.get("kvtier", {}),
            },
        )
    if mode == "vllm_offload":  # vLLM's own offloading connector with its CPU spec
        return KVTransferConfig(
            kv_connector="OffloadingConnector",
            kv_role="kv_both",
            kv_connector_extra_config={"cpu_bytes_to_use": int(job["offload_bytes"])},
        )
    if mode == "null_connector":  # a connector that holds nothing (bench/engines/null_connector.py)
        return KVTransferConfig(
            kv_connector="NullConnector", kv_connector_module_path="null_connector", kv_role="kv_both"
        )
    if mode == "lmcache":
        return KVTransferConfig(kv_connector="LMCacheConnectorV1", kv_role="kv_both")
    raise ValueError(f"unknown mode {mode}")


def _kv_events_config(job: dict[str, Any]):
    events = job.get("kv_events")
    if not events:
        return None
    from vllm.config import KVEventsConfig

    return KVEventsConfig(
        enable_kv_cache_events=True,
        publisher="zmq",
        endpoint=events["endpoint"],
        replay_endpoint=events.get("replay_endpoint"),
        topic=events.get("topic", ""),
    )


def _connector_stats(llm) -> dict[str, int] | None:
    """The kvtier connector's counters in the worker process (one dict per worker, summed)."""

    def read(worker):  # runs in each worker process
        from vllm.distributed.kv_transfer import get_kv_transfer_group, has_kv_transfer_group

        if not has_kv_transfer_group():
            return None
        return dict(getattr(get_kv_transfer_group(), "stats", {}) or {})

    per_worker = [s for s in llm.collective_rpc(read) if s]
    if not per_worker:
        return None
    total: dict[str, int] = {}
    for s in per_worker:
        for k, v in s.items():
            total[k] = total.get(k, 0) + int(v)
    return total


def _engine_counters(llm) -> dict[str, float]:
    out: dict[str, float] = {}
    for metric in llm.get_metrics():
        if metric.name in (
            "vllm:prefix_cache_queries",
            "vllm:prefix_cache_hits",
            "vllm:external_prefix_cache_queries",
            "vllm:external_prefix_cache_hits",
            "vllm:prompt_tokens",
            "vllm:num_preemptions",
        ):
            out[metric.name.removeprefix("vllm:")] = float(getattr(metric, "value", 0) or 0)
        elif metric.name.startswith("vllm:kvtier_"):  # kvtier's offloading spec, from the scheduler
            name = metric.name.removeprefix("vllm:")
            out[name] = out.get(name, 0.0) + float(getattr(metric, "value", 0) or 0)
    return out


def _wait_for(path: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"vllm_job: {path} did not appear within {timeout_s} s")
        time.sleep(0.05)


def _request_result(out) -> dict[str, Any]:
    completion = out.outputs[0]
    logprobs = []
    for token, entry in zip(completion.token_ids, completion.logprobs or []):
        logprobs.append(float(entry[token].logprob) if entry and token in entry else None)
    metrics = getattr(out, "metrics", None)
    ttft = getattr(metrics, "first_token_latency", None) if metrics is not None else None
    return {
        "token_ids": list(completion.token_ids),
        "logprobs": logprobs,
        "num_cached_tokens": int(out.num_cached_tokens or 0),
        "ttft_s": float(ttft) if ttft else None,
    }


def engine_environment() -> None:
    """Settings of the engine process, inherited by the engine-core and worker processes vLLM starts
    (its own processes, as in a deployment)."""
    os.environ.setdefault("VLLM_ALLOW_INSECURE_SERIALIZATION", "1")  # collective_rpc of a function, below
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    here = os.path.dirname(os.path.abspath(__file__))  # null_connector.py, for mode null_connector
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p)


def run(job: dict[str, Any]) -> dict[str, Any]:
    engine_environment()
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt

    started = time.monotonic()
    llm = LLM(
        model=job["model"],
        skip_tokenizer_init=True,
        dtype=job.get("dtype", "bfloat16"),
        block_size=int(job.get("block_size", 32)),
        max_model_len=int(job.get("max_model_len", 4096)),
        max_num_seqs=int(job.get("max_num_seqs", 8)),
        max_num_batched_tokens=int(job.get("max_num_batched_tokens", 4096)),
        kv_cache_memory_bytes=int(job.get("kv_cache_bytes", 64 << 20)),
        enforce_eager=True,
        enable_prefix_caching=bool(job.get("prefix_caching", True)),
        prefix_caching_hash_algo=job.get("hash_algo", "sha256"),
        kv_transfer_config=_transfer_config(job),
        kv_events_config=_kv_events_config(job),
        disable_log_stats=False,
        seed=0,
    )
    result: dict[str, Any] = {"startup_s": time.monotonic() - started, "phases": []}
    for phase in job["phases"]:
        if phase.get("wait_for"):
            _wait_for(phase["wait_for"], float(phase.get("wait_timeout_s", 300)))
        if phase.get("reset_prefix_cache"):  # vLLM forgets its own cache: loads must come from elsewhere
            llm.reset_prefix_cache()
        params = []
        prompts = []
        for p in phase["prompts"]:
            params.append(
                SamplingParams(
                    max_tokens=int(p.get("max_tokens", 8)),
                    temperature=0.0,
                    ignore_eos=True,
                    logprobs=1,
                    detokenize=False,
                    # Where vLLM's OpenAI server puts a request's kv_transfer_params (Request reads them here).
                    extra_args={"kv_transfer_params": p["kv_transfer_params"]} if p.get("kv_transfer_params") else None,
                )
            )
            prompt = TokensPrompt(prompt_token_ids=list(p["tokens"]))
            if p.get("cache_salt"):
                prompt["cache_salt"] = p["cache_salt"]
            prompts.append(prompt)
        begun = time.monotonic()
        if phase.get("batch"):
            outs = llm.generate(prompts, params, use_tqdm=False)
        else:  # one at a time, as the turns of a conversation arrive
            outs = [llm.generate([pr], [sp], use_tqdm=False)[0] for pr, sp in zip(prompts, params)]
        record = {
            "requests": [_request_result(o) for o in outs],
            "wall_s": time.monotonic() - begun,
            "engine": _engine_counters(llm),
            "connector": _connector_stats(llm),
        }
        result["phases"].append(record)
        if phase.get("signal"):
            with open(phase["signal"], "w") as f:
                f.write("done\n")
        if phase.get("print_progress"):
            print(json.dumps({"phase_done": len(result["phases"])}), flush=True)
    return result


# What an engine process group leaves behind when vLLM force-kills its own processes at shutdown (or
# a test kills them): Intel OpenMP's registration file per process and Python's multiprocessing
# shared memory in /dev/shm, and vLLM's ZMQ ipc sockets in the temporary directory (give each engine
# its own TMPDIR and remove it after).
SHM_DIR = "/dev/shm"


def shm_entries() -> set[str]:
    try:
        return set(os.listdir(SHM_DIR))
    except FileNotFoundError:
        return set()


def _running(pid: str) -> bool:
    """The process exists and is not a zombie waiting to be reaped."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def remove_leftovers(before: set[str], grace_s: float = 5.0) -> None:
    """Removes the OpenMP registrations of processes that have ended (waiting up to grace_s for a
    killed engine's processes to go), and the multiprocessing segments and semaphores made since
    `before` (taken when the engine started; engine jobs run one at a time)."""
    deadline = time.monotonic() + grace_s
    for name in sorted(shm_entries() - before):
        if name.startswith("__KMP_REGISTERED_LIB_"):
            pid = name.removeprefix("__KMP_REGISTERED_LIB_").split("_")[0]
            while pid.isdigit() and _running(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if not pid.isdigit() or _running(pid):
                continue
        elif not name.startswith(("psm_", "sem.mp-")):
            continue
        try:
            os.unlink(os.path.join(SHM_DIR, name))
        except FileNotFoundError:
            pass


def main() -> int:
    job_path, out_path = sys.argv[1], sys.argv[2]
    with open(job_path) as f:
        job = json.load(f)
    result = run(job)
    tmp = out_path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f)
    os.replace(tmp, out_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
