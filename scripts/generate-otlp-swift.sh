#!/usr/bin/env bash
# Regenerates Sources/OTLPProto/*.pb.swift from the OTLP v1 descriptors.
#
# Run by hand when the pinned versions below change; the build never runs it, and its output is
# committed. The descriptors come from PyPI opentelemetry-proto (which ships no .proto files, only
# the serialized FileDescriptorProtos inside its _pb2 modules), compiled by protoc with a
# protoc-gen-swift built from the same swift-protobuf release the package depends on, so the
# generated code matches the runtime library.
#
# Environment overrides: SCRATCH (default /tmp/otlp-plugins), SWIFT_PROTOBUF_GIT (default the local
# mirror /opt/swift-packages/apple/swift-protobuf.git).
set -euo pipefail

OTLP_PROTO_VERSION="1.45.2"
SWIFT_PROTOBUF_TAG="1.39.0"

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT_DIR="$REPO_ROOT/Sources/OTLPProto"
SCRATCH="${SCRATCH:-/tmp/otlp-plugins}"
SWIFT_PROTOBUF_GIT="${SWIFT_PROTOBUF_GIT:-/opt/swift-packages/apple/swift-protobuf.git}"
PYTHON="${PYTHON:-python3}"

PROTO_FILES=(
  opentelemetry/proto/common/v1/common.proto
  opentelemetry/proto/resource/v1/resource.proto
  opentelemetry/proto/trace/v1/trace.proto
  opentelemetry/proto/logs/v1/logs.proto
  opentelemetry/proto/metrics/v1/metrics.proto
  opentelemetry/proto/collector/trace/v1/trace_service.proto
  opentelemetry/proto/collector/logs/v1/logs_service.proto
  opentelemetry/proto/collector/metrics/v1/metrics_service.proto
)

log() { printf '%s\n' "generate-otlp-swift: $*" >&2; }

# 1. The descriptors: exactly the pinned opentelemetry-proto, so regeneration is reproducible.
installed="$("$PYTHON" -c 'import importlib.metadata as m; print(m.version("opentelemetry-proto"))' \
  2>/dev/null || true)"
if [[ "$installed" != "$OTLP_PROTO_VERSION" ]]; then
  log "installing opentelemetry-proto==$OTLP_PROTO_VERSION (found: ${installed:-none})"
  "$PYTHON" -m pip install --quiet "opentelemetry-proto==$OTLP_PROTO_VERSION"
fi

# 2. protoc (Debian's protobuf-compiler).
if ! command -v protoc >/dev/null 2>&1; then
  log "installing protobuf-compiler"
  if [[ "$(id -u)" -eq 0 ]]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q protobuf-compiler
fi

# 3. protoc-gen-swift, built outside the repo so it never joins the package build.
mkdir -p "$SCRATCH"
PLUGIN_SRC="$SCRATCH/swift-protobuf"
if [[ ! -d "$PLUGIN_SRC/.git" ]]; then
  git clone --quiet "$SWIFT_PROTOBUF_GIT" "$PLUGIN_SRC"
fi
git -C "$PLUGIN_SRC" fetch --quiet --tags origin || true
git -C "$PLUGIN_SRC" checkout --quiet "$SWIFT_PROTOBUF_TAG"
log "building protoc-gen-swift $SWIFT_PROTOBUF_TAG in $PLUGIN_SRC"
(cd "$PLUGIN_SRC" && swift build -c release --product protoc-gen-swift >&2)
PLUGIN="$(cd "$PLUGIN_SRC" && swift build -c release --show-bin-path)/protoc-gen-swift"
[[ -x "$PLUGIN" ]] || { log "plugin not found at $PLUGIN"; exit 1; }

# 4. The descriptor set, then the Swift code. Old generated files are removed first so a file
#    dropped upstream does not linger.
FDS="$SCRATCH/otlp.fds"
"$PYTHON" "$REPO_ROOT/scripts/otlp_descriptor_set.py" "$FDS" >/dev/null
mkdir -p "$OUT_DIR"
find "$OUT_DIR" -maxdepth 1 -name '*.pb.swift' -delete
protoc \
  --descriptor_set_in="$FDS" \
  --plugin=protoc-gen-swift="$PLUGIN" \
  --swift_out="$OUT_DIR" \
  --swift_opt=Visibility=Public,FileNaming=PathToUnderscores,UseAccessLevelOnImports=true \
  "${PROTO_FILES[@]}"

log "wrote $(find "$OUT_DIR" -maxdepth 1 -name '*.pb.swift' | wc -l) files to $OUT_DIR"
