#!/usr/bin/env bash
# Runs every test: installs what is needed, starts a throwaway PostgreSQL on loopback
# (scripts/postgres.sh; stopped at the end), checks that the generated code matches proto/,
# runs the Swift suites (the stores' on SQLite and on PostgreSQL), then the Python interop tests against a real `lumen serve` (with
# schemathesis against gateway/openapi.yaml), then fuzzes the inference path's parsers for a
# bounded time (scripts/fuzz.sh; FUZZ_SECONDS, default 60 each).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --tests

# A throwaway PostgreSQL on loopback for the stores' tests (the same tests run on SQLite and on it).
postgres_dir="$(mktemp -d)"
rmdir "$postgres_dir"
trap 'scripts/postgres.sh stop "$postgres_dir"' EXIT
LUMEN_TEST_POSTGRES_URL="$(scripts/postgres.sh start "$postgres_dir")"
export LUMEN_TEST_POSTGRES_URL LUMEN_TEST_POSTGRES_REQUIRED=1
echo "== PostgreSQL for the tests at $LUMEN_TEST_POSTGRES_URL" >&2

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
