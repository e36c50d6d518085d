#!/usr/bin/env bash
# Regenerate the protobuf message classes for src/dsd/runtime/proto/dsd.proto.
# Needs grpcio-tools (dev extra). Only the message module (dsd_pb2.py + .pyi) is generated:
# the service bindings are written by hand in dsd/runtime/protocol.py with grpc's generic
# handlers, so the runtime does not pin grpcio to the grpcio-tools version that generated
# them. The generated dsd_pb2.py checks that the installed protobuf runtime is at least the
# version that generated it (see the header of dsd_pb2.py).
set -euo pipefail
cd "$(dirname "$0")/.."
python -m grpc_tools.protoc -I src --python_out=src --pyi_out=src src/dsd/runtime/proto/dsd.proto
echo "generated src/dsd/runtime/proto/dsd_pb2.py and dsd_pb2.pyi"
