"""kvtier: the node KV-cache, from Python engines.

The native module maps the node's shared-memory index and host arena into this process: matching,
acquiring (zero-copy views), and putting blocks make no RPC. docs/python.md describes the API.
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
    RemoteReader,
    Reservation,
    KEY_BYTES,
    KEY_FORMAT_VERSION,
    cuda_copy_built,
    fetch_remote,
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
