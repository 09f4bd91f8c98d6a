#!/usr/bin/env bash
# Quick start: installs what is needed, builds Lumen and runs `lumen serve` on the embedded
# default (everything in one process, SQLite under ./data, HTTP on 127.0.0.1:8080, gRPC on
# 127.0.0.1:9090). Extra arguments go to `lumen serve` (see `lumen serve --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
swift build --product lumen
exec .build/debug/lumen serve "$@"
