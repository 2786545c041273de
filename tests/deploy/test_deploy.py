"""deploy/: every kustomize overlay renders with kubectl and its objects agree with each other and
with the configuration the daemon reads; the Dockerfile builds with the project's own scripts.
Run by ctest (deploy_manifests) with KVTIER_BIN_DIR set to the build's bin/."""

import os
import re
import shutil
import subprocess

import pytest
import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("KVTIER_BIN_DIR", os.path.join(ROOT, "build", "bin"))
KUSTOMIZE = os.path.join(ROOT, "deploy", "kustomize")
OVERLAYS = ["base", "overlays/dev", "overlays/production", "overlays/hostipc", "overlays/networkpolicy-only",
            "overlays/rdma"]
ENGINE_EXAMPLE = "examples/vllm-engine"

GIB = 1 << 30
UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "Ki": 1 << 10, "Mi": 1 << 20,
         "Gi": 1 << 30, "Ti": 1 << 40, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40,
         "B": 1, "k": 1000, "KB": 1000, "MB": 10**6, "GB": 10**9, "TB": 10**12}


def to_bytes(text):
    m = re.fullmatch(r"([0-9.]+)\s*([A-Za-z]*)", str(text).strip())
    assert m and m.group(2) in UNITS, f"not a size: {text!r}"
    return int(float(m.group(1)) * UNITS[m.group(2)])


def render(path):
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is needed to render deploy/kustomize (it renders kustomize natively)"
    out = subprocess.run([kubectl, "kustomize", os.path.join(KUSTOMIZE, path)], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, f"kubectl kustomize {path} failed:\n{out.stderr}"
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def one(objs, kind, name=None):
    found = [o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def container(pod_spec, name):
    found = [c for c in pod_spec.get("containers", []) if c["name"] == name]
    assert len(found) == 1, f"no container {name}"
    return found[0]


def port_of(address):
    return int(address.rsplit(":", 1)[1])


def named_port(c, name):
    ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    assert name in ports, f"container {c['name']} has no port named {name}"
    return ports[name]


def mount_for(pod_spec, c, path):
    """The volume behind the mount at `path` (or the deepest mount above it)."""
    best = None
    for m in c.get("volumeMounts", []):
        mp = m["mountPath"].rstrip("/")
        if (path == mp or path.startswith(mp + "/")) and (best is None or len(mp) > len(best["mountPath"])):
            best = m
    if best is None:
        return None
    vols = {v["name"]: v for v in pod_spec.get("volumes", [])}
    assert best["name"] in vols, f"mount {best['name']} has no volume"
    return vols[best["name"]]


class Rendered:
    def __init__(self, overlay):
        self.objs = render(overlay)
        self.ds = one(self.objs, "DaemonSet", "kvtierd")
        self.pod = self.ds["spec"]["template"]["spec"]
        self.kvtierd = container(self.pod, "kvtierd")
        self.cm = one(self.objs, "ConfigMap")
        self.config = yaml.safe_load(self.cm["data"]["kvtierd.yaml"])
        self.indexer_config = yaml.safe_load(self.cm["data"]["indexer.yaml"])
        self.indexer = one(self.objs, "Deployment", "kvtier-indexer")
        self.namespace = self.ds["metadata"]["namespace"]


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request):
    return Rendered(request.param)


def pod_specs(objs):
    for o in objs:
        if o["kind"] in ("DaemonSet", "Deployment", "StatefulSet", "Job"):
            yield o["metadata"]["name"], o["spec"]["template"]["spec"]
        elif o["kind"] == "Pod":
            yield o["metadata"]["name"], o["spec"]


def test_every_container_has_limits_and_probes(rendered):
    objs = rendered.objs + render(ENGINE_EXAMPLE)
    for name, spec in pod_specs(objs):
        for c in spec.get("initContainers", []) + spec["containers"]:
            res = c.get("resources", {})
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(res.get(kind, {})), f"{name}/{c['name']}: {kind} lack cpu or memory"
        for c in spec["containers"]:
            assert "readinessProbe" in c and "livenessProbe" in c, f"{name}/{c['name']} lacks probes"


def test_daemon_config_in_the_configmap_passes_check_config(rendered, tmp_path):
    cfg = tmp_path / "kvtierd.yaml"
    cfg.write_text(rendered.cm["data"]["kvtierd.yaml"])
    out = subprocess.run([os.path.join(BIN, "kvtierd"), "--config", str(cfg), "--check-config"],
                         capture_output=True, text=True, timeout=60, env={"PATH": os.environ.get("PATH", "")})
    assert out.returncode == 0, out.stdout + out.stderr
    assert "configuration ok" in out.stdout
    args = rendered.kvtierd["args"]
    assert args[args.index("--config") + 1] == "/etc/kvtier/kvtierd.yaml"


def test_indexer_config_in_the_configmap_passes_its_check(rendered, tmp_path):
    (tmp_path / "kvtierd.yaml").write_text(rendered.cm["data"]["kvtierd.yaml"])
    (tmp_path / "indexer.yaml").write_text(rendered.cm["data"]["indexer.yaml"])
    out = subprocess.run([os.path.join(BIN, "kvtier-indexer"), "--config", str(tmp_path / "indexer.yaml"),
                          "--namespaces-config", str(tmp_path / "kvtierd.yaml"), "--check"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "configuration ok" in out.stdout


def config_mount_holds(rendered, spec, c, path):
    vol = mount_for(spec, c, path)
    assert vol is not None and "configMap" in vol, f"{path} is not on the ConfigMap volume"
    assert vol["configMap"]["name"] == rendered.cm["metadata"]["name"]
    assert os.path.basename(path) in rendered.cm["data"]


def test_shm_and_ssd_mounts_match_the_config(rendered):
    pod, c, cfg = rendered.pod, rendered.kvtierd, rendered.config
    config_mount_holds(rendered, pod, c, "/etc/kvtier/kvtierd.yaml")
    ssd_dir = cfg["ssd"]["dir"]
    assert os.path.isabs(ssd_dir), "ssd.dir must be absolute in a container"
    ssd = mount_for(pod, c, ssd_dir)
    assert ssd is not None and "hostPath" in ssd, f"ssd.dir {ssd_dir} is not on a hostPath volume"
    shm = mount_for(pod, c, "/dev/shm")
    if pod.get("hostIPC"):
        assert shm is None, "hostIPC and a /dev/shm volume both"
    else:
        assert shm is not None and "hostPath" in shm, "/dev/shm must be the shared hostPath directory"
    # The init container prepares exactly those directories, at the same paths.
    init = {i["name"]: i for i in pod.get("initContainers", [])}["prepare-host-dirs"]
    script = " ".join(init["command"])
    assert ssd_dir in script
    assert mount_for(pod, init, ssd_dir)["name"] == ssd["name"]
    if shm is not None:
        assert "/dev/shm" in script and mount_for(pod, init, "/dev/shm")["name"] == shm["name"]
    # The indexer reads the same namespaces file from its own mount of the ConfigMap.
    ic = rendered.indexer["spec"]["template"]["spec"]
    idx = container(ic, "kvtier-indexer")
    config_mount_holds(rendered, ic, idx, rendered.indexer_config["namespaces_config"])
    config_mount_holds(rendered, ic, idx, idx["args"][idx["args"].index("--config") + 1])


def service_port(svc, name):
    ports = {p["name"]: p for p in svc["spec"]["ports"]}
    assert name in ports, f"Service {svc['metadata']['name']} has no port {name}"
    return ports[name]


def probe_ports(c):
    """The port each probe asks: kubelet's own gRPC probe, or `kvtier health -a 127.0.0.1:PORT` run
    in the pod where the port speaks TLS."""
    for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
        probe = c.get(kind)
        if probe and "grpc" in probe:
            yield kind, probe["grpc"]["port"]
        elif probe and "exec" in probe:
            command = probe["exec"]["command"]
            assert command[:2] == ["/usr/local/bin/kvtier", "health"], command
            yield kind, port_of(command[command.index("-a") + 1])


def probe_flags(c):
    """The TLS flags of each exec probe's `kvtier health`, as a dict."""
    for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
        command = c.get(kind, {}).get("exec", {}).get("command")
        if command:
            yield kind, {command[i]: command[i + 1] for i in range(2, len(command) - 1) if command[i].startswith("--")}


def test_ports_agree_across_objects(rendered):
    c, cfg = rendered.kvtierd, rendered.config
    grpc = port_of(cfg["server"]["grpc_address"])
    metrics = port_of(cfg["server"]["metrics_address"])
    assert cfg["server"]["grpc_address"].startswith("0.0.0.0:"), "kubelet probes and other nodes use the pod IP"
    assert named_port(c, "grpc") == grpc and named_port(c, "metrics") == metrics
    kinds = dict(probe_ports(c))
    assert kinds and set(kinds.values()) == {grpc}, f"probes {kinds} != grpc port {grpc}"
    assert "startupProbe" in kinds
    local = one(rendered.objs, "Service", "kvtierd")
    assert local["spec"]["internalTrafficPolicy"] == "Local"
    headless = one(rendered.objs, "Service", "kvtierd-headless")
    assert headless["spec"]["clusterIP"] == "None"
    for svc in (local, headless):
        assert svc["spec"]["selector"].items() <= rendered.ds["spec"]["template"]["metadata"]["labels"].items()
        assert service_port(svc, "grpc")["targetPort"] in ("grpc", grpc)
    assert service_port(local, "metrics")["targetPort"] in ("metrics", metrics)
    vllm = cfg.get("events", {}).get("vllm", {})
    if vllm.get("enabled"):
        for name, key in (("vllm-events", "endpoint"), ("vllm-replay", "replay_endpoint")):
            assert named_port(c, name) == port_of(vllm[key])
            assert service_port(local, name)["targetPort"] == name
    # The PodMonitor scrapes the metrics port of these pods.
    pm = one(rendered.objs, "PodMonitor", "kvtierd")
    assert pm["spec"]["selector"]["matchLabels"].items() <= rendered.ds["spec"]["template"]["metadata"]["labels"].items()
    assert [e["port"] for e in pm["spec"]["podMetricsEndpoints"]] == ["metrics"]
    # The indexer follows the headless Service on the daemon's gRPC port, and serves on its own.
    ic = rendered.indexer_config
    assert ic["nodes_dns"] == [f"kvtierd-headless.{rendered.namespace}.svc.cluster.local:{grpc}"]
    idx = container(rendered.indexer["spec"]["template"]["spec"], "kvtier-indexer")
    iport = port_of(ic["grpc_address"])
    assert named_port(idx, "grpc") == iport
    assert set(dict(probe_ports(idx)).values()) == {iport}
    isvc = one(rendered.objs, "Service", "kvtier-indexer")
    assert service_port(isvc, "grpc")["targetPort"] in ("grpc", iport)
    # Its own /metrics, scraped by its own PodMonitor.
    assert named_port(idx, "metrics") == port_of(ic["metrics_address"])
    ipm = one(rendered.objs, "PodMonitor", "kvtier-indexer")
    assert ipm["spec"]["selector"]["matchLabels"].items() <= rendered.indexer["spec"]["template"]["metadata"]["labels"].items()
    assert [e["port"] for e in ipm["spec"]["podMetricsEndpoints"]] == ["metrics"]


def test_memory_is_sized_from_the_tiers(rendered):
    cfg, res = rendered.config, rendered.kvtierd["resources"]
    capacity = int(cfg.get("index", {}).get("capacity", 1 << 20))
    # 81 B of table per entry, and the evicted blocks' use counts: 4 × capacity 2-byte cells,
    # rounded up to a power of two.
    need = to_bytes(cfg["host"]["bytes"]) + capacity * 81 + (1 << (4 * capacity - 1).bit_length()) * 2
    need += int(cfg.get("events", {}).get("ring", 262144)) * 56
    vllm = cfg.get("events", {}).get("vllm", {})
    if vllm.get("enabled"):
        need += int(vllm.get("token_ring", 65536)) * (64 + 4 * int(vllm.get("max_block_tokens", 256)))
    need += 512 << 20  # the process: RocksDB, gRPC, threads
    limit = to_bytes(res["limits"]["memory"])
    assert limit >= need, f"memory limit {limit / GIB:.1f} GiB < {need / GIB:.1f} GiB the tiers need"
    assert limit <= need + 4 * GIB, f"memory limit {limit / GIB:.1f} GiB is far above what the tiers need"
    assert res["requests"]["memory"] == res["limits"]["memory"], "the shared memory is never given back: request it all"


def test_termination_grace_covers_drain_and_flush(rendered):
    grace = rendered.pod["terminationGracePeriodSeconds"]
    assert grace * 1000 >= int(rendered.config["server"].get("drain_ms", 2000)) + 20000


def test_everything_runs_as_non_root_on_one_image(rendered):
    images = set()
    for name, spec in pod_specs(rendered.objs):
        sc = spec.get("securityContext", {})
        assert sc.get("runAsNonRoot") is True and sc.get("runAsUser", 0) != 0, f"{name} may run as root"
        for c in spec.get("initContainers", []) + spec["containers"]:
            images.add(c["image"])
            csc = c.get("securityContext", {})
            assert csc.get("allowPrivilegeEscalation") is False, f"{name}/{c['name']}"
            assert "ALL" in csc.get("capabilities", {}).get("drop", []), f"{name}/{c['name']} keeps capabilities"
    assert len(images) == 1, f"one image for every container, not {images}"


def test_engine_example_shares_the_daemons_segments():
    daemon = Rendered("base")
    engine = one(render(ENGINE_EXAMPLE), "Pod")
    spec = engine["spec"]
    c = spec["containers"][0]
    shm = mount_for(spec, c, "/dev/shm")
    daemon_shm = mount_for(daemon.pod, daemon.kvtierd, "/dev/shm")
    assert shm["hostPath"]["path"] == daemon_shm["hostPath"]["path"]
    assert daemon.pod["securityContext"]["runAsGroup"] in spec["securityContext"]["supplementalGroups"]
    env = {e["name"]: e for e in c["env"]}
    assert env["KVTIER_NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    assert daemon.kvtierd["env"][0] == {"name": "KVTIER_NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}
    assert env["KVTIER_SHM_PREFIX"]["value"] == daemon.config["node"]["shm_prefix"]
    grpc = port_of(daemon.config["server"]["grpc_address"])
    assert env["KVTIER_ADDRESS"]["value"] == f"kvtierd.{daemon.namespace}.svc.cluster.local:{grpc}"
    assert engine["metadata"]["namespace"] == daemon.namespace


def test_yamllint_is_clean():
    yamllint = shutil.which("yamllint")
    assert yamllint, "yamllint is installed by scripts/setup"
    out = subprocess.run([yamllint, "-s", "-c", os.path.join(ROOT, ".yamllint"), os.path.join(ROOT, "deploy")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


def dockerfile_stages():
    stages, current = {}, None
    with open(os.path.join(ROOT, "deploy", "docker", "Dockerfile")) as f:
        text = re.sub(r"\\\n", " ", f.read())
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        if word.upper() == "FROM":
            current = rest.split()[-1]
            stages[current] = [("FROM", rest)]
        else:
            stages[current].append((word.upper(), rest))
    return stages


def test_dockerfile_builds_with_the_projects_scripts():
    stages = dockerfile_stages()
    assert list(stages) == ["build", "runtime"]
    build_runs = " ".join(rest for word, rest in stages["build"] if word == "RUN")
    assert "scripts/setup" in build_runs and "scripts/build release" in build_runs
    assert "scripts/runtime-packages" in build_runs
    assert stages["build"][0][1].startswith("debian:12 ") and stages["runtime"][0][1].startswith("debian:12-slim ")
    users = [rest for word, rest in stages["runtime"] if word == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    # The binaries it copies are the ones the manifests run.
    copies = " ".join(rest for word, rest in stages["build"] if word == "RUN")
    for binary in ("kvtierd", "kvtier", "kvtier-indexer"):
        assert f"build/bin/{binary}" in copies
    entry = [rest for word, rest in stages["runtime"] if word == "ENTRYPOINT"][-1]
    assert "/usr/local/bin/kvtierd" in entry
    base = Rendered("base")
    idx = container(base.indexer["spec"]["template"]["spec"], "kvtier-indexer")
    assert idx["command"] == ["/usr/local/bin/kvtier-indexer"]


def test_runtime_packages_are_debian_packages_of_the_built_binaries():
    binaries = [os.path.join(BIN, b) for b in ("kvtierd", "kvtier", "kvtier-indexer")]
    out = subprocess.run([os.path.join(ROOT, "scripts", "runtime-packages"), *binaries], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    packages = out.stdout.split()
    assert "libc6" in packages and "libstdc++6" in packages and any(p.startswith("libgrpc++") for p in packages)
    assert not any(p.endswith("-dev") for p in packages), packages
    status = subprocess.run(["dpkg-query", "-W", "-f=${Status}\\n", *packages], capture_output=True, text=True)
    assert status.returncode == 0 and all(s == "install ok installed" for s in status.stdout.split("\n") if s)


def secret_of(pod_spec, c, path):
    vol = mount_for(pod_spec, c, path)
    assert vol is not None and "secret" in vol, f"{path} is not on a Secret volume"
    return vol["secret"]["secretName"]


def certificate_for(objs, secret):
    found = [o for o in objs if o["kind"] == "Certificate" and o["spec"]["secretName"] == secret]
    assert len(found) == 1, f"no cert-manager Certificate writes the Secret {secret}"
    return found[0]["spec"]


def test_tls_files_come_from_certificates_that_name_what_clients_check(rendered):
    """With TLS, every file a config names is in a Secret that a Certificate writes; the names
    clients check (probes' --tls-server-name, the indexer's node_client.server_name) are in its
    dnsNames; every identity granted a role is some Certificate's URI. Without TLS, allow_insecure
    is set and the NetworkPolicies stand guard."""
    objs = rendered.objs
    ipod = rendered.indexer["spec"]["template"]["spec"]
    idx = container(ipod, "kvtier-indexer")
    uris = {u for o in objs if o["kind"] == "Certificate" for u in o["spec"].get("uris", [])}
    parts = ((rendered.config["server"], rendered.pod, rendered.kvtierd),
             (rendered.indexer_config, ipod, idx))
    for cfg, spec, c in parts:
        tls = cfg.get("tls", {})
        if not tls.get("cert_file"):
            assert cfg.get("allow_insecure") is True
            assert not any(o["kind"] in ("Certificate", "Issuer") for o in objs), "certificates nobody mounts"
            assert all("grpc" in c[k] for k in ("startupProbe", "readinessProbe", "livenessProbe"))
            continue
        secret = secret_of(spec, c, tls["cert_file"])
        for key in ("key_file", "client_ca_file"):
            assert secret_of(spec, c, tls[key]) == secret
        cert = certificate_for(objs, secret)
        assert "server auth" in cert["usages"]
        for kind, flags in probe_flags(c):
            assert flags["--tls-server-name"] in cert["dnsNames"], kind
            for flag, key in (("--tls-ca", "client_ca_file"), ("--tls-cert", "cert_file"), ("--tls-key", "key_file")):
                assert flags[flag] == tls[key], f"{kind} {flag}"
            assert "client auth" in cert["usages"], "the probe presents the pod's own certificate"
        for grant in cfg.get("access", {}).get("grants", []):
            if "identity" in grant:
                assert grant["identity"] in uris, f"no Certificate carries {grant['identity']}"
    node_client = rendered.indexer_config.get("node_client")
    if rendered.config["server"].get("tls", {}).get("cert_file"):
        assert node_client, "kvtierd speaks TLS: the indexer's followers need node_client"
        assert secret_of(ipod, idx, node_client["cert_file"]) == secret_of(ipod, idx, node_client["ca_file"])
        node_cert = certificate_for(objs, secret_of(rendered.pod, rendered.kvtierd,
                                                    rendered.config["server"]["tls"]["cert_file"]))
        assert node_client["server_name"] in node_cert["dnsNames"]
        assert rendered.indexer_config["nodes_dns"][0].rsplit(":", 1)[0] in node_cert["dnsNames"]
        follower = certificate_for(objs, secret_of(ipod, idx, node_client["cert_file"]))
        granted = {g["identity"]: g["roles"] for g in rendered.config["server"]["access"]["grants"] if "identity" in g}
        assert "client auth" in follower["usages"]
        assert any("read" in granted.get(u, []) for u in follower["uris"]), "the indexer may not read the nodes"
    else:
        assert not node_client or not node_client.get("ca_file")


def test_network_policies_admit_only_the_served_ports(rendered):
    """kvtierd's and the indexer's pods are selected by an ingress NetworkPolicy that opens exactly
    their named container ports (and nothing on other ports)."""
    policies = [o for o in rendered.objs if o["kind"] == "NetworkPolicy"]
    for workload, c in ((rendered.ds, rendered.kvtierd),
                        (rendered.indexer, container(rendered.indexer["spec"]["template"]["spec"], "kvtier-indexer"))):
        labels = workload["spec"]["template"]["metadata"]["labels"]
        mine = [p for p in policies if p["spec"]["podSelector"]["matchLabels"].items() <= labels.items()]
        assert len(mine) == 1, f"{workload['metadata']['name']}: {len(mine)} NetworkPolicies"
        spec = mine[0]["spec"]
        assert spec["policyTypes"] == ["Ingress"]
        opened = {p["port"] for rule in spec["ingress"] for p in rule["ports"]}
        assert opened == {p["name"] for p in c["ports"]}, f"{workload['metadata']['name']}: {opened}"


def test_rdma_overlay_reaches_the_hca_and_may_pin_the_arena():
    """overlays/rdma: the HCA through a device plugin, IPC_LOCK for the arena's registration, the
    UCX transports named, and the base's hardening otherwise kept (docs/transport.md)."""
    r = Rendered("overlays/rdma")
    c = container(r.pod, "kvtierd")
    assert c["resources"]["limits"].get("rdma/hca_shared_devices_a") == 1
    caps = c["securityContext"]["capabilities"]
    assert caps["add"] == ["IPC_LOCK"] and caps["drop"] == ["ALL"]
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    env = {e["name"]: e.get("value") for e in c.get("env", [])}
    assert "rc" in env["UCX_TLS"].split(",") and "tcp" in env["UCX_TLS"].split(",")
    assert not r.pod.get("hostNetwork", False), "hostNetwork is the operator's choice, commented out"
