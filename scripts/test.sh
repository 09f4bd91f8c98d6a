#!/usr/bin/env bash
# Runs every test: installs what is needed, checks that the generated code matches proto/,
# runs the Swift suites, then the Python interop tests against a real `lumen serve` (with
# schemathesis against gateway/openapi.yaml), then fuzzes the inference path's parsers for a
# bounded time (scripts/fuzz.sh; FUZZ_SECONDS, default 60 each).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --tests

echo "== build" >&2
swift build --build-tests

echo "== generated code" >&2
scripts/check-generated.sh

echo "== Swift tests" >&2
swift test

echo "== interop tests (Python client generated from proto/)" >&2
venv=.build-venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --disable-pip-version-check -r Tests/interop/requirements.txt
LUMEN_BIN="$PWD/.build/debug/lumen" "$venv/bin/python" -m pytest -q Tests/interop

echo "== fuzzing (libFuzzer, ${FUZZ_SECONDS:-60}s per parser)" >&2
scripts/fuzz.sh
