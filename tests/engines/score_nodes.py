"""ScoreNodes against a kvtier-indexer, from Debian's Python (its grpcio and the stubs a kvtier build
generates; the engine virtualenv's protobuf is too new for them). Prints one JSON object.

usage: /usr/bin/python3 score_nodes.py ADDRESS MODEL_ID TOKEN_IDS_JSON"""
import json
import os
import sys

sys.path.insert(0, os.environ["KVTIER_PYTHON_STUBS"])
import grpc  # noqa: E402
from kvtier.v1 import scheduler_pb2, scheduler_pb2_grpc  # noqa: E402


def main():
    address, model_id, token_ids = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    with grpc.insecure_channel(address) as channel:
        grpc.channel_ready_future(channel).result(timeout=20)
        stub = scheduler_pb2_grpc.SchedulerStub(channel)
        request = scheduler_pb2.ScoreNodesRequest(token_ids=token_ids)
        request.namespace.model_id = model_id
        reply = stub.ScoreNodes(request, timeout=10)
        engines = stub.ListNodes(scheduler_pb2.ListNodesRequest(), timeout=10)
    print(json.dumps({
        "blocks": reply.blocks,
        "nodes": {n.node: {"prefix_blocks": n.prefix_blocks, "hbm_blocks": n.hbm_blocks} for n in reply.nodes},
        "engines": {
            n.node: {"events": n.events, "malformed": n.malformed, "unknown_events": n.unknown_events, "gaps": n.gaps,
                     "other_group_events": n.other_group_events}
            for n in engines.nodes
        },
    }))


if __name__ == "__main__":
    main()
