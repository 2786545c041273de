"""kvtier: the node KV-cache, from Python engines.

The native module maps the node's shared-memory index and host arena into this process: matching,
acquiring (zero-copy views), and putting blocks make no RPC. docs/python.md describes the API.
RemoteReader and fetch_remote (blocks of other nodes) load on first use: they bring gRPC and UCX
into the process, which an engine reading only its own node does not need.
"""

from kvtier._native import (  # noqa: F401  (the package's public names)
    BlockLoad,
    Client,
    Error,
    HostBlock,
    KvCopier,
    KvCopy,
    Match,
    Namespace,
    Reservation,
    KEY_BYTES,
    KEY_FORMAT_VERSION,
    cuda_copy_built,
)

__all__ = [
    "BlockLoad",
    "Client",
    "Error",
    "HostBlock",
    "KvCopier",
    "KvCopy",
    "Match",
    "Namespace",
    "RemoteReader",
    "Reservation",
    "KEY_BYTES",
    "KEY_FORMAT_VERSION",
    "cuda_copy_built",
    "fetch_remote",
]


def __getattr__(name):
    if name in ("RemoteReader", "fetch_remote"):
        from kvtier import _remote

        return getattr(_remote, name)
    raise AttributeError(f"module 'kvtier' has no attribute {name!r}")
