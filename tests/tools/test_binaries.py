"""The three binaries as an operator runs them: kvtier, kvtierd, kvtier-bench."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from loopback import free_port  # noqa: E402

BIN = os.environ.get("KVTIER_BIN_DIR", "")


def run(name, *args, timeout=120):
    return subprocess.run([os.path.join(BIN, name), *args], capture_output=True, text=True, timeout=timeout)


def test_demo_shows_shared_prefixes_and_tenant_isolation():
    out = run("kvtier", "demo")
    assert out.returncode == 0, out.stderr
    rows = [line.split() for line in out.stdout.splitlines() if line.strip()[:1].isdigit()]
    assert len(rows) >= 3
    turn1, later = rows[0], rows[1:]
    assert turn1[3] == "0"  # nothing cached before the first turn
    for row in later:
        assert int(row[3]) > 0  # each later turn finds the earlier turns' blocks
    assert "0 shared with the empty-salt tenant" in out.stdout


def test_versions_name_the_key_format():
    for name in ("kvtier", "kvtierd"):
        out = run(name, "--version")
        assert out.returncode == 0
        assert "key format v1" in out.stdout


def test_kvtierd_checks_the_embedded_default():
    out = run("kvtierd", "--check")
    assert out.returncode == 0, out.stderr
    assert "configuration ok" in out.stdout


def test_kvtierd_effective_config_round_trips(tmp_path):
    conf = tmp_path / "node.yaml"
    conf.write_text("host:\n  bytes: 2GiB\nnode:\n  name: node-a\n")
    out = run("kvtierd", "--config", str(conf), "--print-config")
    assert out.returncode == 0, out.stderr
    effective = tmp_path / "effective.yaml"
    effective.write_text(out.stdout)
    again = run("kvtierd", "--config", str(effective), "--print-config")
    assert again.returncode == 0, again.stderr
    assert again.stdout == out.stdout
    assert "2GiB" in out.stdout and "node-a" in out.stdout


@pytest.mark.parametrize("text,message", [
    ("host:\n  bytes: 0\n", "host.bytes must be at least 1MiB"),
    ("server:\n  grpc_address: nowhere\n", "must be host:port"),
    ("colour: blue\n", "unknown key '<top>.colour'"),
])
def test_kvtierd_rejects_bad_config_with_a_clear_message(tmp_path, text, message):
    conf = tmp_path / "bad.yaml"
    conf.write_text(text)
    out = run("kvtierd", "--config", str(conf), "--check")
    assert out.returncode == 2
    assert message in out.stderr


def test_kvtierd_missing_config_file():
    out = run("kvtierd", "--config", "/nonexistent/kvtier.yaml", "--check")
    assert out.returncode == 2
    assert "cannot open config file" in out.stderr


SMALL_NODE = """
node: {{name: {name}, shm_prefix: kvtiertest}}
index: {{capacity: 4096}}
host: {{bytes: 16MiB, slab_bytes: 4MiB}}
ssd: {{dir: {dir}, bytes: 64MiB, region_bytes: 4MiB}}
server: {{grpc_address: "127.0.0.1:{grpc}", metrics_address: "127.0.0.1:{metrics}"}}
"""


def remove_node_segments(name):
    """The shared-memory segments a test node named `name` leaves in /dev/shm."""
    for part in ("index", "host", "loads"):
        try:
            os.unlink(f"/dev/shm/kvtiertest-{name}-{part}")
        except FileNotFoundError:
            pass


def small_node(name, ssd_dir):
    return SMALL_NODE.format(name=name, dir=ssd_dir, grpc=free_port(), metrics=free_port())


@pytest.fixture
def node_dir():
    # Under the build tree: the SSD tier needs a file system with O_DIRECT (not every /tmp has it).
    path = tempfile.mkdtemp(prefix="kvtierd-", dir=os.getcwd())
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_kvtierd_serves_until_sigterm_and_stops_cleanly(node_dir):
    name = f"bin{os.getpid()}"
    config = os.path.join(node_dir, "node.yaml")
    with open(config, "w") as f:
        f.write(small_node(name, os.path.join(node_dir, "ssd")))
    daemon = subprocess.Popen([os.path.join(BIN, "kvtierd"), "--config", config], stdout=subprocess.PIPE, text=True)
    try:
        first = daemon.stdout.readline()
        while first and "serving node" not in first:
            first = daemon.stdout.readline()
        assert f"serving node {name}" in first
        assert os.path.exists(f"/dev/shm/kvtiertest-{name}-index")
        assert os.path.exists(os.path.join(node_dir, "ssd", "data-0.kvt"))
        daemon.send_signal(signal.SIGTERM)
        rest, _ = daemon.communicate(timeout=60)
        assert daemon.returncode == 0
        assert "SIGTERM received" in rest and "kvtierd: stopped" in rest
    finally:
        if daemon.poll() is None:
            daemon.kill()
        remove_node_segments(name)


def test_kvtierd_refuses_an_unreadable_ssd_catalogue_unless_told_to_start_empty(node_dir):
    name = f"cat{os.getpid()}"
    config = os.path.join(node_dir, "node.yaml")
    ssd = os.path.join(node_dir, "ssd")
    with open(config, "w") as f:
        f.write(small_node(name, ssd))
    os.makedirs(os.path.join(ssd, "catalog"))
    with open(os.path.join(ssd, "catalog", "CURRENT"), "w") as f:
        f.write("MANIFEST-that-does-not-exist\n")
    try:
        out = run("kvtierd", "--config", config, timeout=60)
        assert out.returncode == 1
        assert "--ssd-start-empty" in out.stdout + out.stderr
        daemon = subprocess.Popen([os.path.join(BIN, "kvtierd"), "--config", config, "--ssd-start-empty"],
                                  stdout=subprocess.PIPE, text=True)
        line = daemon.stdout.readline()
        while line and "serving node" not in line:
            line = daemon.stdout.readline()
        assert "serving node" in line
        daemon.send_signal(signal.SIGTERM)
        daemon.communicate(timeout=60)
        assert daemon.returncode == 0
    finally:
        remove_node_segments(name)


# Sanitizer presets build no kvtier-bench (its suites are timed in Release): their shape is
# checked where it is built.
needs_bench = pytest.mark.skipif(not os.path.exists(os.path.join(BIN, "kvtier-bench")),
                                 reason="kvtier-bench is not built in this preset")


@needs_bench
def test_bench_keys_ends_with_its_json_line():
    # Shape only: speed targets are judged from the bench itself, never in a timed test.
    out = run("kvtier-bench", "keys", "--quick", "--json", timeout=300)
    assert out.returncode == 0, out.stderr
    last = out.stdout.strip().splitlines()[-1]
    figures = json.loads(last)
    assert figures["suite"] == "keys"
    assert figures["gbytes_per_s"] > 0
    assert figures["vs_memcpy"] > 0
    assert "block_tokens" in out.stdout  # the readable table precedes it


def bench_figures(suite):
    """Runs a suite with --quick --json; its figures, checked to be its own. Speed is judged from the bench."""
    out = run("kvtier-bench", suite, "--quick", "--json", timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    assert figures["suite"] == suite
    return figures


@needs_bench
def test_bench_index_ends_with_its_json_line():
    figures = bench_figures("index")
    assert figures["answers_correct"] is True
    for field in ("probes_per_s", "vs_unordered_map", "bytes_per_entry", "reader_rate_under_writes"):
        assert figures[field] > 0, field
    # Redis is installed by scripts/setup, so the comparison must have run.
    assert figures["vs_redis"] is not None and figures["vs_redis"] > 0, figures.get("vs_redis_reason")


@needs_bench
def test_bench_host_ends_with_its_json_line():
    figures = bench_figures("host")
    assert figures["reads_complete"] is True
    for field in ("put_gbytes_per_s", "put_vs_memcpy", "get_copy_vs_memcpy", "acquire_release_per_s"):
        assert figures[field] > 0, field


@needs_bench
def test_bench_ssd_ends_with_its_json_line():
    figures = bench_figures("ssd")  # the suite runs fio itself
    assert figures["reads_intact"] is True
    for field in ("write_gbytes_per_s", "read_gbytes_per_s", "write_vs_fio", "read_vs_fio", "zstd_ratio"):
        assert figures[field] > 0, field
    assert figures["warm_restart_blocks_recovered"] == 1.0
    assert not [p for p in os.listdir(".") if p.startswith("kvtier-bench-ssd-")], "the bench removes its files"


@needs_bench
def test_bench_server_ends_with_its_json_line():
    figures = bench_figures("server")
    for field in ("match_qps", "match_p99_us_at_20k_qps", "getblocks_vs_tcp", "events_per_s_one_subscriber",
                  "events_per_s_each_of_8"):
        assert figures[field] > 0, field
    assert not [p for p in os.listdir(".") if p.startswith("kvtier-bench-server-")], "the bench removes its files"


@needs_bench
def test_bench_indexer_ends_with_its_json_line():
    figures = bench_figures("indexer")  # answers are checked inside: a wrong one fails the run
    for field in ("ingest_events_per_s", "score_p99_us", "ingest_baseline_events_per_s", "score_p50_us"):
        assert figures[field] > 0, field
    assert figures["score_vs_redis"] > 0, "redis-server is installed by scripts/setup"


def start_daemon(config, *flags):
    daemon = subprocess.Popen([os.path.join(BIN, "kvtierd"), "--config", config, *flags],
                              stdout=subprocess.PIPE, text=True)
    line = daemon.stdout.readline()
    while line and "serving node" not in line:
        line = daemon.stdout.readline()
    assert "serving node" in line
    return daemon


def test_kvtierd_refuses_a_second_daemon_and_a_busy_port(node_dir):
    name = f"dup{os.getpid()}"
    config = os.path.join(node_dir, "node.yaml")
    with open(config, "w") as f:
        f.write(small_node(name, os.path.join(node_dir, "ssd")))
    first = start_daemon(config)
    try:
        # The same node again: its SSD tier and load queue are taken.
        second = run("kvtierd", "--config", config, timeout=60)
        assert second.returncode == 1
        assert "cannot start" in second.stdout + second.stderr
        # Another node on the first one's gRPC port.
        busy = os.path.join(node_dir, "busy.yaml")
        with open(config) as f:
            text = f.read().replace(name, name + "b").replace(os.path.join(node_dir, "ssd"),
                                                               os.path.join(node_dir, "ssd-b"))
        with open(busy, "w") as f:
            f.write(text)
        out = run("kvtierd", "--config", busy, timeout=60)
        assert out.returncode == 1
        assert "cannot serve gRPC" in out.stdout + out.stderr
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=60)
        assert first.returncode == 0
        for n in (name, name + "b"):
            remove_node_segments(n)


def test_cli_shows_a_running_node_over_grpc(node_dir):
    name = f"cli{os.getpid()}"
    config = os.path.join(node_dir, "node.yaml")
    with open(config, "w") as f:
        f.write(small_node(name, os.path.join(node_dir, "ssd")))
    address = next(line.split('"')[1] for line in open(config) if "grpc_address" in line)
    metrics = next(line.split('"')[3] for line in open(config) if "grpc_address" in line)
    daemon = start_daemon(config, "--log-format", "json")
    try:
        wrote = run("kvtier", "tiers-demo", "write", "--config", config, timeout=300)
        assert wrote.returncode == 0, wrote.stdout + wrote.stderr

        stats = run("kvtier", "stats", "--address", address)
        assert stats.returncode == 0, stats.stderr
        assert f"node {name}" in stats.stdout
        host_row = next(line.split() for line in stats.stdout.splitlines() if line.startswith("host "))
        ssd_row = next(line.split() for line in stats.stdout.splitlines() if line.startswith("ssd "))
        assert int(host_row[1]) > 0 and int(ssd_row[1]) > 0  # blocks in both tiers

        tokens = run("kvtier", "tiers-demo", "tokens", "--config", config).stdout.strip()
        match = run("kvtier", "match", "--address", address, "--model", "kvtier-demo/llama-3.2-1b", "--tokens", tokens)
        assert match.returncode == 0, match.stderr
        matched, asked = match.stdout.split()[1], match.stdout.split()[3]
        assert int(matched) > 0 and int(asked) >= int(matched), wrote.stdout + match.stdout

        snap = run("kvtier", "snapshot", "--address", address, "--keys")
        assert snap.returncode == 0, snap.stderr
        first_key = next(line.strip() for line in snap.stdout.splitlines() if line.startswith("  "))
        by_key = run("kvtier", "match", "--address", address, "--keys", first_key)
        assert by_key.stdout.startswith("matched 1 of 1 blocks"), by_key.stdout + by_key.stderr

        events = run("kvtier", "events", "--address", address, "--limit", "5")
        assert events.returncode == 0, events.stderr
        lines = [line.split() for line in events.stdout.splitlines()[1:]]
        assert [int(line[0]) for line in lines] == list(range(5))  # gap-free from the start
        assert lines[0][1] == "stored" and lines[0][-1] == "host"

        follow = subprocess.Popen([os.path.join(BIN, "kvtier"), "events", "--address", address, "--follow"],
                                  stdout=subprocess.PIPE, text=True)
        assert "following" in follow.stdout.readline()
        follow.send_signal(signal.SIGINT)
        follow.communicate(timeout=30)
        assert follow.returncode == 0

        bad = run("kvtier", "match", "--address", address, "--model", "no/such-model", "--tokens", "1,2,3")
        assert bad.returncode == 1 and "not configured" in bad.stderr

        import urllib.request
        page = urllib.request.urlopen(f"http://{metrics}/metrics", timeout=10).read().decode()
        assert 'kvtier_requests_total{rpc="MatchPrefix",outcome="ok"} 2' in page
        assert "kvtier_demotions_total" in page
    finally:
        daemon.send_signal(signal.SIGTERM)
        out, _ = daemon.communicate(timeout=60)
        assert daemon.returncode == 0
        for line in out.splitlines():
            json.loads(line)  # --log-format json: every line is one JSON object
        remove_node_segments(name)


@pytest.mark.parametrize("args,message", [
    ([], "no nodes to follow"),
    (["--node", "127.0.0.1:1", "--weights", "1,0.9,0.5"], "four numbers"),
    (["--node", "127.0.0.1:1", "--weights", "1,0.9,0.5,1.5"], "weights are in [0, 1]"),
    (["--nodes-file", "/nonexistent/nodes.txt"], "cannot be read"),
    (["--nodes-dns", "kvtierd-headless"], "must be name:port"),
    (["--node", "127.0.0.1:1", "--namespaces-config", "/nonexistent/kvtierd.yaml"], "/nonexistent/kvtierd.yaml"),
])
def test_kvtier_indexer_rejects_bad_arguments_clearly(args, message):
    out = run("kvtier-indexer", "--grpc-address", f"127.0.0.1:{free_port()}", *args, timeout=30)
    assert out.returncode == 2, out.stdout + out.stderr
    assert message in out.stdout + out.stderr


def test_kvtier_indexer_refuses_a_bad_or_busy_metrics_address():
    out = run("kvtier-indexer", "--grpc-address", f"127.0.0.1:{free_port()}", "--node", "127.0.0.1:1",
              "--metrics-address", "no-port", timeout=30)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "metrics address 'no-port' must be host:port" in out.stdout + out.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = run("kvtier-indexer", "--grpc-address", f"127.0.0.1:{free_port()}", "--node", "127.0.0.1:1",
                  "--metrics-address", f"127.0.0.1:{port}", timeout=30)
    assert out.returncode == 1, out.stdout + out.stderr
    assert f"127.0.0.1:{port}" in out.stdout + out.stderr


def test_kvtier_indexer_rejects_a_bad_nodes_file(tmp_path):
    nodes = tmp_path / "nodes.txt"
    nodes.write_text("# comment\n127.0.0.1:50551\nnot an address\n")
    out = run("kvtier-indexer", "--nodes-file", str(nodes), timeout=30)
    assert out.returncode == 2
    assert "nodes.txt:3" in out.stdout + out.stderr


@pytest.mark.parametrize("text,message", [
    ("grpc_address: [1, 2]\n", "'grpc_address' must be a string"),
    ("nodes: [127.0.0.1:1]\nfrobnicate: 1\n", "unknown key 'frobnicate'"),
    ("nodes: [127.0.0.1:1]\nweights: {hbm: 2}\n", "weights are in [0, 1]"),
    ("engine_namespaces:\n  - {model_id: m, key_profile: sha1}\n", "unknown key profile 'sha1'"),
    ("engine_namespaces:\n  - {model_id: m, key_profile: kvtier}\nnodes: [127.0.0.1:1]\n", "not engines"),
    ("vllm_engines:\n  - {name: e, endpoint: 'tcp://127.0.0.1:1', model_id: m}\n", "not one of engine_namespaces"),
    ("nodes: [127.0.0.1:1\n", "not valid YAML"),
    ("nodes_dns: [kvtierd-headless]\n", "'kvtierd-headless' must be name:port"),
    ("nodes_dns: kvtierd-headless:50551\n", "'nodes_dns' must be a list"),
])
def test_kvtier_indexer_rejects_a_bad_config_file(tmp_path, text, message):
    config = tmp_path / "indexer.yaml"
    config.write_text(text)
    out = run("kvtier-indexer", "--config", str(config), "--grpc-address", f"127.0.0.1:{free_port()}", timeout=30)
    assert out.returncode == 2, out.stdout + out.stderr
    assert message in out.stdout + out.stderr


@needs_bench
def test_bench_workload_writes_a_trace_it_can_read_back(tmp_path):
    trace = tmp_path / "synthetic.jsonl"
    out = run("kvtier-bench", "workload", "--out", str(trace), "--requests", "300", "--seed", "5", timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = trace.read_text().splitlines()
    assert len(lines) == 300
    first = json.loads(lines[0])
    assert set(first) == {"timestamp", "input_length", "output_length", "hash_ids"}
    assert len(first["hash_ids"]) == (first["input_length"] + 511) // 512
    again = run("kvtier-bench", "workload", "--trace", str(trace), timeout=60)
    assert again.returncode == 0, again.stderr
    assert "300" in again.stdout and "ideal block hit ratio" in again.stdout
    bad = run("kvtier-bench", "workload", "--requests", "0", timeout=60)
    assert bad.returncode == 2
    assert "requests must be" in bad.stderr


@needs_bench
def test_bench_policy_compares_policies_with_lru_and_the_optimum(tmp_path):
    trace = tmp_path / "synthetic.jsonl"
    assert run("kvtier-bench", "workload", "--out", str(trace), "--requests", "400", timeout=60).returncode == 0
    out = run("kvtier-bench", "policy", "--trace", str(trace), "--host-blocks", "50", "2000", "6000", "20000",
              "--json", timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    assert figures["suite"] == "policy"
    for key in ("default_vs_lru_1m", "default_vs_lru_3m", "default_vs_lru_10m", "belady_1m"):
        assert isinstance(figures[key], (int, float)) and figures[key] > 0, key
    # The optimum bounds every policy at every size.
    for name in ("lru", "prefix-aware", "s3fifo", "prefix-frequency", "hit-density", "lru-exact"):
        assert figures[f"{name}_0.026M_block_hit"] <= figures["belady_0.026M_block_hit"], name
    assert "hit-density over host memory and an SSD tier" in out.stdout  # the default
    bad = run("kvtier-bench", "policy", "--trace", str(trace), "--policies", "clairvoyant", timeout=60)
    assert bad.returncode == 2
    assert "unknown eviction policy" in bad.stderr


@needs_bench
def test_bench_policy_studies_several_traces_in_one_run(tmp_path):
    trace = tmp_path / "chat.jsonl"
    assert run("kvtier-bench", "workload", "--family", "chat", "--out", str(trace), "--requests", "400",
               timeout=60).returncode == 0
    out = run("kvtier-bench", "policy", "--trace", str(trace), "--family", "rag", "--family-requests", "600",
              "--host-blocks", "100", "2000", "--policies", "lru", "prefix-frequency", "--json", timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Summary" in out.stdout and "synthetic-rag" in out.stdout
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    assert figures["traces"] == 2
    assert isinstance(figures["never_below_lru"], bool)
    assert figures["worst_vs_lru"] > 0 and figures["worst_vs_lru_at"].split()[0] in ("chat", "synthetic-rag")
    assert figures["never_below_lru"] == (figures["worst_vs_lru"] >= 1)
    # Each trace's figures under its own label; the admission bounds sit between exact LRU and Belady.
    for label in ("chat", "synthetic_rag"):
        assert f"{label}_default_vs_lru_1m" in figures, label
        for bound in ("lru-oracle-admission", "lru-feature-admission"):
            assert figures[f"{label}_{bound}_0.051M_block_hit"] <= figures[f"{label}_belady_0.051M_block_hit"], bound
            assert figures[f"{label}_{bound}_0.051M_block_hit"] >= figures[f"{label}_lru-exact_0.051M_block_hit"], bound
    assert "lru-feature-admission: exact LRU admitting" in out.stdout and "best rule" in out.stdout
    bad = run("kvtier-bench", "policy", "--family", "nonsense", timeout=60)
    assert bad.returncode == 2 and "unknown workload family" in bad.stderr


@needs_bench
def test_bench_policy_writes_a_report_with_its_plots(tmp_path):
    report = tmp_path / "report"
    out = run("kvtier-bench", "policy", "--host-blocks", "100", "400", "--policies", "lru", "prefix-frequency",
              "--report", str(report), timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    md = (report / "policy.md").read_text()
    assert "## Host memory alone" in md and "prefix-frequency" in md
    rows = (report / "policy_host.dat").read_text().splitlines()
    # The default is studied too, though --policies did not name it.
    assert rows[0].split()[1:] == ['"lru"', '"prefix-frequency"', '"hit-density"', '"lru-oracle-admission"',
                                   '"lru-feature-admission"', '"lru-exact"', '"belady"']
    assert len(rows) == 3
    if shutil.which("gnuplot"):
        for png in ("hit_ratio_vs_capacity.png", "per_tier_hit_ratio.png"):
            assert (report / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
        assert "![block hit ratio vs host capacity](hit_ratio_vs_capacity.png)" in md
    else:
        assert "no plot" in md


@needs_bench
def test_bench_replay_runs_a_trace_against_a_live_kvtierd(tmp_path):
    out = run("kvtier-bench", "replay", "--requests", "600", "--host-tokens", "51200", "--ssd-tokens", "2048000",
              "--json", timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    f = json.loads(out.stdout.strip().splitlines()[-1])
    assert f["suite"] == "replay" and f["requests"] == 600
    assert 0 < f["block_hit"] <= 1 and f["ssd_block_hit"] > 0, f
    assert abs(f["block_hit"] - f["host_block_hit"] - f["ssd_block_hit"]) < 1e-5
    assert f["demotions"] > 0 and f["blocks_loaded"] > 0 and f["evictions"] > 0, f
    assert 0 < f["prefill_saved_fraction"] < 1
    # Prefill saved per tier adds up, and the node ran the default policy.
    assert abs(f["host_prefill_saved_fraction"] + f["ssd_prefill_saved_fraction"] - f["prefill_saved_fraction"]) < 1e-5
    assert f["ssd_prefill_saved_fraction"] > 0 and f["policy"] == "hit-density"
    assert "100% 600/600 requests" in out.stderr  # the progress bar
    # Another family and another policy: the node runs the one asked for.
    lru = run("kvtier-bench", "replay", "--family", "rag", "--requests", "300", "--policy", "lru", "--json", timeout=120)
    assert lru.returncode == 0, lru.stdout + lru.stderr
    assert json.loads(lru.stdout.strip().splitlines()[-1])["policy"] == "lru"
    assert "family rag" in lru.stdout and "lru eviction" in lru.stdout
    wrong = run("kvtier-bench", "replay", "--policy", "clairvoyant", timeout=60)
    assert wrong.returncode == 2 and "unknown eviction policy" in wrong.stderr
    bad = run("kvtier-bench", "replay", "--host-tokens", "100", timeout=60)
    assert bad.returncode == 2 and "at least one block" in bad.stderr
    small = run("kvtier-bench", "replay", "--ssd-tokens", "256000", timeout=60)
    assert small.returncode == 2 and "--ssd-tokens must be 0 or at least" in small.stderr
    # KVTIER_* settings meant for another node (scripts/run exports some) do not reach its kvtierd.
    leaky = subprocess.run([os.path.join(BIN, "kvtier-bench"), "replay", "--requests", "50"], capture_output=True,
                           text=True, timeout=60, env={**os.environ, "KVTIER_NODE_NAME": "elsewhere",
                                                       "KVTIER_HOST_BYTES": "8MiB"})
    assert leaky.returncode == 0, leaky.stderr


def test_run_all_targets_name_every_suite_and_parse():
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
    assert subprocess.run(["bash", "-n", os.path.join(root, "bench", "run-all")]).returncode == 0
    suites = set()
    with open(os.path.join(root, "bench", "targets.tsv")) as f:
        for line in f:
            if line.startswith("#") or line.startswith("suite\t"):
                continue
            suite, figure, op, target, what = line.rstrip("\n").split("\t")
            assert op in (">=", "<=", "report"), line
            assert (op == "report") == (target == ""), line
            if target:
                float(target)
            assert figure and what, line
            suites.add(suite)
    assert suites == {"keys", "index", "host", "ssd", "server", "transport", "indexer", "policy", "replay", "engine"}
