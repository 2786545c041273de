"""The part of a prompt's prefix another node holds, brought into this node for the vLLM connector.

A scheduler that sees the cluster (kvtier-indexer's ScoreNodes reports per node the blocks it could
fetch from the others, `remote_blocks`, and which nodes hold them) names the node that holds the
prefix in the request's kv_transfer_params: {"kvtier_remote_node": "<host:port>"}, that node's
gRPC port (vLLM's OpenAI server passes a request's `kv_transfer_params` through to the connector as
Request.kv_transfer_params). The connector's scheduler side then reads the blocks past what this
node holds with kvtier.RemoteReader (UCX straight out of the other node's arena, or GetBlocks; every
block checked against its sealed checksum) on a thread of its own, and puts them into this node's
host tier; meanwhile vLLM asks again in later steps (as it does for SSD loads) and then loads the
prefix like any local one. docs/engines.md#a-prefix-another-node-holds.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import kvtier

logger = logging.getLogger("kvtier.vllm_connector")

PARAM_REMOTE_NODE = "kvtier_remote_node"  # in a request's kv_transfer_params


def remote_node_of(request: Any) -> str | None:
    """The node a scheduler named for this request's prefix, if any."""
    params = getattr(request, "kv_transfer_params", None)
    if not isinstance(params, dict):
        return None
    node = params.get(PARAM_REMOTE_NODE)
    return str(node) if node else None


class RemotePrefixFetcher:
    """Fetches chains from other nodes into this node's host tier, one fetch at a time, off the
    caller's thread. `reader_options` are kvtier.RemoteReader's keyword options (TLS files, ...);
    the counters go into `stats` (the connector's)."""

    def __init__(
        self,
        client: kvtier.Client,
        wait_s: float,
        reader_options: dict[str, Any] | None = None,
        stats: dict[str, int] | None = None,
    ):
        self._client = client
        self._wait_s = wait_s
        self._reader_options = dict(reader_options or {})
        self._readers: dict[str, kvtier.RemoteReader] = {}  # by address; used on the fetch thread only
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kvtier-remote-prefix")
        self._pending: dict[str, tuple[Future, float]] = {}  # req_id → (fetch, deadline)
        self.stats = stats if stats is not None else {}
        self.stats.update({
            "remote_fetches": 0,  # requests whose prefix was fetched from another node
            "remote_blocks": 0,  # blocks fetched and put into this node's host tier
            "remote_failures": 0,  # fetches that failed (the request computes what is missing)
            "remote_timeouts": 0,  # requests that stopped waiting (the fetch went on for later ones)
        })

    def wait(self, req_id: str, address: str, chains: list[tuple[kvtier.Namespace, list[bytes]]]) -> bool:
        """Whether the request should wait for its prefix to arrive from `address`: the first call
        starts the fetch of each rank's chain (its namespace and keys) past what this node holds;
        later calls say whether it is still running and within its wait."""
        pending = self._pending.get(req_id)
        if pending is None:
            if all(self._client.match(keys).overall >= len(keys) for _, keys in chains):
                return False  # this node holds it all
            self._pending[req_id] = (self._pool.submit(self._fetch, address, chains), time.monotonic() + self._wait_s)
            return True
        fetch, deadline = pending
        if not fetch.done():
            if time.monotonic() < deadline:
                return True
            del self._pending[req_id]
            self.stats["remote_timeouts"] += 1
            return False
        del self._pending[req_id]
        try:
            self.stats["remote_blocks"] += fetch.result()
            self.stats["remote_fetches"] += 1
        except Exception as e:  # noqa: BLE001  (any failure only costs the request its prefix)
            self.stats["remote_failures"] += 1
            logger.warning("kvtier connector: fetching %s's prefix from %s failed: %s", req_id, address, e)
        return False

    def forget(self, req_id: str) -> None:
        self._pending.pop(req_id, None)

    def _fetch(self, address: str, chains: list[tuple[kvtier.Namespace, list[bytes]]]) -> int:
        reader = self._readers.get(address)
        if reader is None:
            reader = kvtier.RemoteReader(address, **self._reader_options)
            self._readers[address] = reader
        stored = 0
        for ns, keys in chains:
            local = self._client.match(keys).overall
            wanted = keys[local:]  # a key names its whole prefix: the other node matches from here
            if not wanted:
                continue
            size = ns.block_bytes
            dest = bytearray(len(wanted) * size)
            got = reader.fetch(wanted, dest)
            view = memoryview(dest)
            for i in range(got["blocks"]):
                at = local + i
                try:
                    self._client.put(ns, keys[at], keys[at - 1] if at > 0 else ns.root, view[i * size : (i + 1) * size])
                except kvtier.Error as e:
                    if getattr(e, "code", "") != "not_admitted":
                        raise
                    break  # the node's put admission refused the chain here: the engine computes the rest
                stored += 1
            if got["blocks"] < len(wanted):
                break  # ranks take the prefix they all hold: the others gain nothing past this one
        return stored

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
