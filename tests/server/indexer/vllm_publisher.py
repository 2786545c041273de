"""A vLLM-format KV event publisher for the tests, written from vLLM's documented wire format
(docs/scheduler.md, vllm/distributed/kv_events.py), with Debian's python3-zmq and python3-msgpack:

- PUB socket: 3 frames [topic, seq (8 bytes big-endian), payload]; seq starts at 0 and restarts
  at 0 when the engine restarts.
- ROUTER replay socket: a request [identity, "", start_seq] is answered with
  [identity, "", topic, seq, payload] for each buffered batch from start_seq on, then an end
  marker whose seq is 0xFF×8 and whose payload is empty.
- payload: msgpack [ts, [events…], data_parallel_rank]; an event is a tagged array
  ["BlockStored", block_hashes, parent_block_hash, token_ids, block_size, lora_id, medium] (older
  vLLM) or a map {"type": "BlockStored", "block_hashes": …} (newer vLLM).

It binds an XPUB socket (wire-compatible with PUB) so a test can wait for the subscriber."""
import struct
import threading
import time

import msgpack
import zmq

END_SEQ = b"\xff" * 8


def stored(hashes, parent, tokens, block_size=16, medium="GPU", encoding="array"):
    if encoding == "array":
        return ["BlockStored", hashes, parent, tokens, block_size, None, medium]
    return {"type": "BlockStored", "block_hashes": hashes, "parent_block_hash": parent, "token_ids": tokens,
            "block_size": block_size, "lora_id": None, "medium": medium}


def removed(hashes, medium="GPU", encoding="array"):
    if encoding == "array":
        return ["BlockRemoved", hashes, medium]
    return {"type": "BlockRemoved", "block_hashes": hashes, "medium": medium}


def cleared(encoding="array"):
    return ["AllBlocksCleared"] if encoding == "array" else {"type": "AllBlocksCleared"}


class VllmPublisher:
    def __init__(self, topic=b""):
        self.ctx = zmq.Context()
        self.pub = self.ctx.socket(zmq.XPUB)
        self.pub_port = self.pub.bind_to_random_port("tcp://127.0.0.1")
        self.router = self.ctx.socket(zmq.ROUTER)
        self.replay_port = self.router.bind_to_random_port("tcp://127.0.0.1")
        self.topic = topic
        self.seq = 0
        self.buffer = []  # (seq, payload), as vLLM's replay buffer
        self.lock = threading.Lock()
        self.stopping = False
        self.replays = 0
        self.thread = threading.Thread(target=self._serve_replay, daemon=True)
        self.thread.start()

    @property
    def endpoint(self):
        return f"tcp://127.0.0.1:{self.pub_port}"

    @property
    def replay_endpoint(self):
        return f"tcp://127.0.0.1:{self.replay_port}"

    def wait_for_subscriber(self, timeout=10.0):
        self.pub.setsockopt(zmq.RCVTIMEO, int(timeout * 1000))
        msg = self.pub.recv()  # XPUB: b"\x01" + topic when a SUB subscribes
        assert msg[:1] == b"\x01", msg

    def payload(self, events, ts=None, as_map=False):
        ts = time.time() if ts is None else ts
        if as_map:
            return msgpack.packb({"ts": ts, "events": events, "data_parallel_rank": 0}, use_bin_type=True)
        return msgpack.packb([ts, events, 0], use_bin_type=True)

    def publish_payload(self, payload, send=True):
        """Buffers the batch for replay under the next seq; sends it unless send is False (a gap)."""
        with self.lock:
            seq = self.seq
            self.seq += 1
            self.buffer.append((seq, payload))
        if send:
            self.pub.send_multipart([self.topic, struct.pack(">Q", seq), payload])
        return seq

    def publish(self, events, send=True, as_map=False):
        return self.publish_payload(self.payload(events, as_map=as_map), send)

    def send_raw(self, frames):
        self.pub.send_multipart(frames)

    def restart(self):
        """As an engine restart: the sequence starts again at 0 and the replay buffer is empty."""
        with self.lock:
            self.seq = 0
            self.buffer = []

    def _serve_replay(self):
        poller = zmq.Poller()
        poller.register(self.router, zmq.POLLIN)
        while not self.stopping:
            if not poller.poll(100):
                continue
            identity, empty, start = self.router.recv_multipart()
            (start_seq,) = struct.unpack(">Q", start)
            with self.lock:
                batches = [(s, p) for s, p in self.buffer if s >= start_seq]
                self.replays += 1
            for s, p in batches:
                self.router.send_multipart([identity, b"", self.topic, struct.pack(">Q", s), p])
            self.router.send_multipart([identity, b"", self.topic, END_SEQ, b""])

    def close(self):
        self.stopping = True
        self.thread.join()
        self.pub.close(0)
        self.router.close(0)
        self.ctx.term()
