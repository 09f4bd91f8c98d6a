#!/usr/bin/env bash
# Installs the system packages Lumen needs on Debian/Ubuntu (with Swift already installed):
# the SQLite headers GRDB links against, cracklib's word list (cracklib-runtime), which weak
# passwords are checked against, and curl and jq, which the README's tour uses; with
# --tests, Python's venv for the interop tests, Chromium for the dashboard's browser tests
# (Playwright drives Debian's chromium; its own browser download is not used) and what the C client
# of the interop tests builds and runs with (protobuf-c, nghttp2, valgrind); with --proto, protoc for
# scripts/generate-proto.sh.
# Installs only what is missing, with apt-get: as root, or through sudo otherwise.
set -euo pipefail
packages=(libsqlite3-dev cracklib-runtime curl jq)
for option in "$@"; do
  case "$option" in
    --tests)
      packages+=(python3 chromium)
      # The C client of the interop tests (Tests/interop/c): protoc-c, protobuf-c, nghttp2, valgrind.
      packages+=(gcc make pkg-config protobuf-c-compiler libprotobuf-c-dev libprotobuf-dev libnghttp2-dev valgrind)
      # The split deployment's test certificates (Tests/interop/test_split_tls.py). PostgreSQL
      # comes with scripts/postgres.sh, which installs it without a cluster of its own.
      packages+=(openssl)
      python3 -m venv --help >/dev/null 2>&1 || packages+=(python3-venv)
      ;;
    --proto) packages+=(protobuf-compiler) ;;
    *) echo "setup: unknown option $option (known: --tests, --proto)" >&2; exit 2 ;;
  esac
done
missing=()
for package in "${packages[@]}"; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "setup: ${missing[*]} must be installed: run as root, or install sudo" >&2; exit 1; }
    sudo="sudo"
  fi
  echo "setup: installing ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
command -v swift >/dev/null 2>&1 || { echo "setup: Swift 6.2 or later must be on PATH (https://swift.org/install)" >&2; exit 1; }
