"""Admin.Evict on a kvtierd, from Debian's Python (its grpcio and the stubs a kvtier build generates;
the engine virtualenv's protobuf is too new for them). Prints the reply as one JSON object.

usage: /usr/bin/python3 evict_node.py ADDRESS host|ssd BYTES"""
import json
import os
import sys

sys.path.insert(0, os.environ["KVTIER_PYTHON_STUBS"])
import grpc  # noqa: E402
from kvtier.v1 import admin_pb2, admin_pb2_grpc, common_pb2  # noqa: E402


def main():
    address, tier, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
    tiers = {"host": common_pb2.TIER_HOST, "ssd": common_pb2.TIER_SSD}
    with grpc.insecure_channel(address) as channel:
        grpc.channel_ready_future(channel).result(timeout=20)
        reply = admin_pb2_grpc.AdminStub(channel).Evict(admin_pb2.EvictRequest(tier=tiers[tier], bytes=size), timeout=30)
    print(json.dumps({"bytes_freed": reply.bytes_freed, "blocks_demoted": reply.blocks_demoted,
                      "blocks_dropped": reply.blocks_dropped}))


if __name__ == "__main__":
    main()
