#!/usr/bin/env bash
# Installs the system packages Lumen needs on Debian/Ubuntu (with Swift already installed):
# the SQLite headers GRDB links against and, with --tests, Python's venv for the interop tests.
# Installs only what is missing; needs root or sudo for that.
set -euo pipefail
packages=(libsqlite3-dev)
if [ "${1:-}" = "--tests" ]; then
  packages+=(python3)
  python3 -m venv --help >/dev/null 2>&1 || packages+=(python3-venv)
fi
missing=()
for package in "${packages[@]}"; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup: installing ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
command -v swift >/dev/null 2>&1 || { echo "setup: Swift 6.2 or later must be on PATH (https://swift.org/install)" >&2; exit 1; }
