"""A real kvtierd for Python tests: a node of its own (segments under the shm prefix kvtiertest),
served on a free loopback port until the `with` block ends, then stopped and its segments and
directory removed. KVTIER_BIN_DIR names the build's bin/."""
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import uuid

from loopback import free_port

SHM_PREFIX = "kvtiertest"


@contextlib.contextmanager
def kvtierd_node(sections, namespaces=""):
    """Yields (node name, gRPC address). `sections`: YAML lines for index, host, ssd and the
    server's extra settings (`server_extra`, inserted into the server map); `namespaces`: a
    namespaces: section, or none."""
    path = tempfile.mkdtemp(prefix="kvtierd-py-", dir=os.getcwd())
    name = f"py-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    address = f"127.0.0.1:{free_port()}"
    config = os.path.join(path, "node.yaml")
    body = sections.replace("{server}", f'grpc_address: "{address}", metrics_address: ""')
    with open(config, "w") as f:
        f.write(f"node: {{name: {name}, shm_prefix: {SHM_PREFIX}}}\n{body}\n{namespaces}")
    # The daemon reads KVTIER_* variables as settings: the test's own are not for it.
    env = {k: v for k, v in os.environ.items() if k != "KVTIER_BIN_DIR"}
    daemon = subprocess.Popen([os.path.join(os.environ["KVTIER_BIN_DIR"], "kvtierd"), "--config", config],
                              stdout=subprocess.PIPE, text=True, env=env)
    try:
        line = daemon.stdout.readline()
        while line and "serving node" not in line:
            line = daemon.stdout.readline()
        assert "serving node" in line, "kvtierd did not start"
        yield name, address
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.communicate(timeout=60)
        for part in ("index", "host", "loads", "tokens"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"/dev/shm/{SHM_PREFIX}-{name}-{part}")
        shutil.rmtree(path, ignore_errors=True)
