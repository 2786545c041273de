"""A real kvtierd for the engine tests and bench/engine-bench: its own configuration file, loopback
ports, a host tier and an SSD tier under a scratch directory (and any more YAML sections a test
adds); started and waited for, stopped with SIGTERM, its shared-memory segments removed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

# The loopback-port helper the Python tests use (tests/support/loopback.py).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "support"))
from loopback import free_port  # noqa: E402


class Kvtierd:
    def __init__(self, bin_dir: str, workdir: str, name: str, shm_prefix: str, host_bytes: str = "64MiB",
                 ssd_bytes: str = "256MiB", min_accesses: int = 1, extra_config: str = ""):
        self.name = name
        self.shm_prefix = shm_prefix
        self.address = f"127.0.0.1:{free_port()}"
        self.metrics_port = free_port()
        config = os.path.join(workdir, f"{name}.yaml")
        with open(config, "w") as f:
            f.write(
                f"""
node: {{name: {name}, shm_prefix: {shm_prefix}}}
index: {{capacity: 65536}}
host: {{bytes: {host_bytes}, slab_bytes: 4MiB}}
ssd: {{dir: {workdir}/{name}-ssd, bytes: {ssd_bytes}, region_bytes: 4MiB, direct_io: false,
      admission: {{min_accesses: {min_accesses}}}}}
server: {{grpc_address: "{self.address}", metrics_address: "127.0.0.1:{self.metrics_port}"}}
{extra_config}
"""
            )
        self.log_path = os.path.join(workdir, f"{name}.kvtierd.log")
        self.log = open(self.log_path, "w+")
        # Only kvtierd's own settings: a KVTIER_* variable of the caller's would be read as one.
        env = {k: v for k, v in os.environ.items() if not k.startswith("KVTIER_")}
        self.proc = subprocess.Popen(
            [os.path.join(bin_dir, "kvtierd"), "--config", config], stdout=self.log, stderr=subprocess.STDOUT, env=env
        )
        deadline = time.monotonic() + 30
        while True:
            with open(self.log_path) as f:
                if "serving node" in f.read():
                    break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                with open(self.log_path) as f:
                    raise RuntimeError(f"kvtierd did not start:\n{f.read()}")
            time.sleep(0.05)

    def metric(self, series: str) -> float | None:
        """A sample from the daemon's /metrics: the line that starts with `series`, or None."""
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10) as page:
            for line in page.read().decode().splitlines():
                if line.startswith(series + " "):
                    return float(line.split()[-1])
        return None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=60)
        self.log.close()
        for part in ("index", "host", "loads", "tokens"):
            try:
                os.unlink(f"/dev/shm/{self.shm_prefix}-{self.name}-{part}")
            except FileNotFoundError:
                pass
