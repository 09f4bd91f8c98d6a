#!/usr/bin/env bash
# Lumen in the workplace's side-by-side gateway bench (`../shared/bench`: nginx serving fixed
# OpenAI-shaped bodies as the upstream, each target pinned to one core, wrk from the other):
# builds Lumen in release, prepares a data directory with an organisation and a key, then runs
# the harness with Lumen as a target — beside nginx as a reverse proxy (the physical floor) when
# only the JSON scenario runs (nginx cannot stand in for a streaming gateway there).
#
# Usage: bench/side-by-side.sh
#   SHARED_BENCH=../shared/bench   where the harness is
#   LITELLM=0                      1 adds LiteLLM (installs it into the harness's venv: minutes)
#   SCENARIOS="json stream" DURATION=10 REPEATS=1   passed to the harness as they are
# Results: the harness prints its summary and keeps everything under $BENCH_ROOT/results/.
set -euo pipefail
cd "$(dirname "$0")/.."

SHARED_BENCH="$(cd "${SHARED_BENCH:-../shared/bench}" && pwd)"
PORT="${PORT:-18100}"
export LITELLM="${LITELLM:-0}" DURATION="${DURATION:-10}" REPEATS="${REPEATS:-1}" SCENARIOS="${SCENARIOS:-json stream}"

scripts/setup.sh >/dev/null
swift build -c release --product lumen >/dev/null
BIN="$(swift build -c release --show-bin-path)"

WORK="$(mktemp -d)"
SERVER=""
cleanup() {
    [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# The harness's models, each with the max_output_tokens Lumen requires of every model.
sed 's/^    scenes: \[chat\]$/    scenes: [chat]\n    max_output_tokens: 4096/' "$SHARED_BENCH/examples/lumen-bench.yaml" >"$WORK/lumen-bench.yaml"
grep -q max_output_tokens "$WORK/lumen-bench.yaml"

# An organisation and a key, made once on the data directory the measured server then uses.
"$BIN/lumen" admin bootstrap --org Bench --admin-email bench@bench.test --data-dir "$WORK/data" >"$WORK/bootstrap.json"
MT="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["management_token"])' "$WORK/bootstrap.json")"
BENCH_UPSTREAM_KEY=sk-upstream-dummy "$BIN/lumen" serve --data-dir "$WORK/data" --http-port "$PORT" --grpc-port 0 \
    --metrics-port 0 --config "$WORK/lumen-bench.yaml" --log-level warning >"$WORK/prepare.log" 2>&1 &
SERVER=$!
curl -sf --retry 30 --retry-connrefused --retry-delay 1 --max-time 5 "http://127.0.0.1:$PORT/healthz" >/dev/null
KEY="$(curl -fs "http://127.0.0.1:$PORT/v1/management/api-keys" -H "Authorization: Bearer $MT" \
    -H 'content-type: application/json' -d '{"name":"side by side"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')"
kill "$SERVER"
wait "$SERVER" 2>/dev/null || true
SERVER=""

cd "$SHARED_BENCH"
if [ "$SCENARIOS" = json ]; then
    export GATEWAY2_NAME=nginx-proxy GATEWAY2_URL=http://127.0.0.1:18120 GATEWAY2_KEY=x
    export GATEWAY2_CMD="exec nginx -c $SHARED_BENCH/examples/nginx-reverse-proxy.conf -g 'daemon off;'"
fi
GATEWAY_NAME=lumen GATEWAY_URL="http://127.0.0.1:$PORT" GATEWAY_KEY="$KEY" BENCH_UPSTREAM_KEY=sk-upstream-dummy \
GATEWAY_CMD="exec $BIN/lumen serve --data-dir $WORK/data --http-port $PORT --grpc-port 0 --metrics-port 0 --config $WORK/lumen-bench.yaml" \
    bash run.sh
