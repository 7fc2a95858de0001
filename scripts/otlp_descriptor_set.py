#!/usr/bin/env python3
"""Write the OTLP v1 FileDescriptorSet that protoc compiles into Sources/OTLPProto.

PyPI's opentelemetry-proto ships no .proto files, but every generated `_pb2` module
embeds its FileDescriptorProto (`DESCRIPTOR.serialized_pb`). This collects the three
collector service files and, transitively, everything they import; protoc needs each
dependency to appear before the file that imports it, and each file only once.

Usage: otlp_descriptor_set.py OUT.fds   (prints the proto paths it wrote, one per line)
"""

import sys

from google.protobuf import descriptor_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

ROOTS = [trace_service_pb2, logs_service_pb2, metrics_service_pb2]


def collect(roots):
    ordered = []
    seen = set()

    # Depth-first post-order puts every import ahead of its importer. The file
    # graph is a DAG (protoc rejects cycles), so no in-progress marker is needed.
    def visit(file_descriptor):
        if file_descriptor.name in seen:
            return
        seen.add(file_descriptor.name)
        for dependency in file_descriptor.dependencies:
            visit(dependency)
        proto = descriptor_pb2.FileDescriptorProto()
        proto.ParseFromString(file_descriptor.serialized_pb)
        ordered.append(proto)

    for module in roots:
        visit(module.DESCRIPTOR)
    return ordered


def main(argv):
    if len(argv) != 2:
        sys.stderr.write("usage: otlp_descriptor_set.py OUT.fds\n")
        return 2
    files = collect(ROOTS)
    descriptor_set = descriptor_pb2.FileDescriptorSet()
    descriptor_set.file.extend(files)
    with open(argv[1], "wb") as out:
        out.write(descriptor_set.SerializeToString(deterministic=True))
    for proto in files:
        print(proto.name)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
