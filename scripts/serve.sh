#!/usr/bin/env bash
# Quick start: installs what is needed, builds Lumen and runs `lumen serve` on the embedded
# default (everything in one process, SQLite under ./data, HTTP on 127.0.0.1:8080, gRPC on
# 127.0.0.1:9090). Extra arguments go to `lumen serve` (see `lumen serve --help`); with
# --demo, the server's last lines are the demo credentials, framed.
#
# The build is quiet: one progress line on a terminal, the whole log in .build/lumen-build.log,
# its errors shown when it fails.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

mkdir -p .build
log=.build/lumen-build.log
if [ -x .build/debug/lumen ]; then
  echo "serve: building lumen (log: $log)" >&2
else
  echo "serve: building lumen (the first build takes five to ten minutes on two cores; log: $log)" >&2
fi
progress() {
  local line
  while IFS= read -r line; do
    if [ -t 2 ]; then
      case "$line" in
        \[*/*\]*) printf '\r\033[K%s' "${line:0:$(( ${COLUMNS:-80} - 1 ))}" >&2 ;;
      esac
    fi
  done
  if [ -t 2 ]; then printf '\r\033[K' >&2; fi
}
if ! swift build --product lumen 2>&1 | tee "$log" | progress; then
  echo "serve: the build failed; its errors (the whole log is in $log):" >&2
  grep -E -A5 "error:" "$log" | head -n 80 >&2 || tail -n 40 "$log" >&2
  exit 1
fi
echo "serve: built; starting lumen serve $*" >&2
exec .build/debug/lumen serve "$@"
