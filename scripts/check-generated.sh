#!/usr/bin/env bash
# Fails when Sources/LumenAPI/Generated/ is not what scripts/generate-proto.sh makes of proto/.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
scripts/generate-proto.sh "$tmp/Generated"
if ! diff -ru Sources/LumenAPI/Generated "$tmp/Generated"; then
  echo "check-generated: Sources/LumenAPI/Generated is stale; run scripts/generate-proto.sh and commit the result" >&2
  exit 1
fi
echo "check-generated: generated code is up to date"
