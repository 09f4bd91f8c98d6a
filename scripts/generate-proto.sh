#!/usr/bin/env bash
# Regenerates Sources/LumenAPI/Generated/ from proto/.
#
# Needs protoc (Debian's protobuf-compiler, installed by scripts/setup.sh if missing) and the two Swift
# plugins, protoc-gen-swift (swift-protobuf) and protoc-gen-grpc-swift-2 (grpc-swift-protobuf),
# which are built once in release mode into the ignored cache folder .build-protoc/ at the
# versions Package.swift resolves.
#
# Usage: scripts/generate-proto.sh [OUTPUT_DIR]   (default: Sources/LumenAPI/Generated)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
out="${1:-Sources/LumenAPI/Generated}"

command -v protoc >/dev/null 2>&1 || scripts/setup.sh --proto

cache="$root/.build-protoc"
bin="$cache/release"
if [ ! -x "$bin/protoc-gen-swift" ] || [ ! -x "$bin/protoc-gen-grpc-swift-2" ]; then
  echo "generate-proto: building the protoc plugins once into .build-protoc/ (a few minutes)" >&2
  swift build -c release --scratch-path "$cache" --product protoc-gen-swift >&2
  swift build -c release --scratch-path "$cache" --product protoc-gen-grpc-swift-2 >&2
fi

mapfile -t protos < <(cd proto && find . -name '*.proto' | sed 's|^\./||' | LC_ALL=C sort)
rm -rf "$out"
mkdir -p "$out"
protoc \
  --proto_path=proto \
  --plugin=protoc-gen-swift="$bin/protoc-gen-swift" \
  --plugin=protoc-gen-grpc-swift-2="$bin/protoc-gen-grpc-swift-2" \
  --swift_out="$out" \
  --swift_opt=Visibility=Public,FileNaming=PathToUnderscores \
  --grpc-swift-2_out="$out" \
  --grpc-swift-2_opt=Visibility=Public,FileNaming=PathToUnderscores,Client=true,Server=true \
  "${protos[@]}"
echo "generate-proto: wrote $(ls "$out" | wc -l) files to $out" >&2
