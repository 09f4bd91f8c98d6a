#!/usr/bin/env bash
# Lumen's inference benchmark: one run measures a fast mock upstream directly and through
# Lumen (full admission, ledger hold and settlement, relaying), non-streaming and streaming,
# and prints requests/s and p50/p99 for each, plus the single-connection median overhead.
#
# Usage: bench/run.sh            (DURATION=10s CONNECTIONS=64 to change the load)
#
# The gateway (all services in one process, SQLite under a temporary directory, durable
# ledger writes) is pinned to CPU 0 with taskset; the mock upstream and wrk share CPU 1.
# Builds in release; installs wrk with apt-get when it is missing. Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${DURATION:-10s}"
CONNECTIONS="${CONNECTIONS:-64}"
UPSTREAM_PORT="${UPSTREAM_PORT:-9700}"
GATEWAY_PORT="${GATEWAY_PORT:-9780}"
METRICS_PORT="${METRICS_PORT:-9781}"
FLOOR_PORT="${FLOOR_PORT:-9790}"

if ! command -v wrk >/dev/null; then
    sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq && $sudo_cmd apt-get install -y -qq wrk >/dev/null
fi
scripts/setup.sh >/dev/null
swift build -c release --product lumen >/dev/null
swift build -c release --product bench-upstream >/dev/null
swift build -c release --product bench-proxy-floor >/dev/null
BIN="$(swift build -c release --show-bin-path)"

WORK="$(mktemp -d)"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

cpus="$(nproc)"
gateway_cpu=0; other_cpu=$(( cpus > 1 ? 1 : 0 ))

taskset -c "$other_cpu" "$BIN/bench-upstream" "$UPSTREAM_PORT" >"$WORK/upstream.log" 2>&1 &
PIDS+=($!)

# The floor: Hummingbird + AsyncHTTPClient with nothing between, on the gateway's core.
taskset -c "$gateway_cpu" "$BIN/bench-proxy-floor" "$FLOOR_PORT" "http://127.0.0.1:$UPSTREAM_PORT/v1" >"$WORK/floor.log" 2>&1 &
PIDS+=($!)

cat >"$WORK/lumen.yaml" <<YAML
models:
  - name: bench-model
    vendor: Bench
    scenes: [chat]
    prices: {input: 0.15, output: 0.60}
    backends:
      - {id: local, provider: openai, base_url: "http://127.0.0.1:$UPSTREAM_PORT/v1", timeout_ms: 5000}
YAML
taskset -c "$gateway_cpu" "$BIN/lumen" serve --data-dir "$WORK/data" --config "$WORK/lumen.yaml" \
    --http-port "$GATEWAY_PORT" --grpc-port 0 --metrics-port "$METRICS_PORT" --log-level warning >"$WORK/lumen.log" 2>&1 &
PIDS+=($!)

wait_for() {  # url
    for _ in $(seq 1 300); do
        if curl -fs -o /dev/null "$1"; then return 0; fi
        sleep 0.1
    done
    echo "bench: $1 did not come up" >&2; cat "$WORK/lumen.log" >&2; exit 1
}
wait_for "http://127.0.0.1:$GATEWAY_PORT/healthz"

MT="$("$BIN/lumen" admin bootstrap --org Bench --admin-email bench@bench.test --data-dir "$WORK/data" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["management_token"])')"
KEY="$(curl -fs "http://127.0.0.1:$GATEWAY_PORT/v1/management/api-keys" -H "Authorization: Bearer $MT" \
    -d '{"name": "bench"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')"
for _ in $(seq 1 100); do  # the gateway learns of the key through its watch
    curl -fs -o /dev/null -H "Authorization: Bearer $KEY" "http://127.0.0.1:$GATEWAY_PORT/v1/models" && break
    sleep 0.05
done

run() {  # name url stream connections result-name
    local line
    line="$(BENCH_KEY="$KEY" BENCH_STREAM="$3" taskset -c "$other_cpu" wrk -t1 -c"$4" -d"$DURATION" \
        -s bench/chat.lua "$2/v1/chat/completions" | grep '^RESULT')"
    read -r _ rps p50 p99 errors total <<<"$line"
    printf "%-34s %10s %10s %10s %8s\n" "$1" "$rps" "$p50" "$p99" "$errors"
    eval "RPS_$5=$rps; P50_$5=$p50"
}

UP="http://127.0.0.1:$UPSTREAM_PORT"
GW="http://127.0.0.1:$GATEWAY_PORT"
FL="http://127.0.0.1:$FLOOR_PORT"
echo "Lumen bench: $DURATION per run, $CONNECTIONS connections, gateway on CPU $gateway_cpu ($(nproc) CPUs)"
printf "%-34s %10s %10s %10s %8s\n" "scenario" "req/s" "p50 ms" "p99 ms" "errors"
run "upstream direct, JSON" "$UP" 0 "$CONNECTIONS" up_json
run "bare proxy (floor), JSON" "$FL" 0 "$CONNECTIONS" fl_json
run "through Lumen, JSON" "$GW" 0 "$CONNECTIONS" gw_json
run "upstream direct, streaming" "$UP" 1 "$CONNECTIONS" up_sse
run "through Lumen, streaming" "$GW" 1 "$CONNECTIONS" gw_sse
run "upstream direct, JSON, 1 conn" "$UP" 0 1 up_one
run "bare proxy (floor), JSON, 1 conn" "$FL" 0 1 fl_one
run "through Lumen, JSON, 1 conn" "$GW" 0 1 gw_one

python3 - "$RPS_up_json" "$RPS_gw_json" "$RPS_up_sse" "$RPS_gw_sse" "$P50_up_one" "$P50_gw_one" "$RPS_fl_json" "$P50_fl_one" <<'PY'
import sys
up, gw, up_s, gw_s, p50_up, p50_gw, floor, p50_floor = map(float, sys.argv[1:])
print(f"through Lumen / direct: JSON {gw / up:.2f}, streaming {gw_s / up_s:.2f}")
print(f"through Lumen / bare proxy: JSON {gw / floor:.2f}")
print(f"median added on one connection: by Lumen {p50_gw - p50_up:.3f} ms, by the bare proxy {p50_floor - p50_up:.3f} ms")
PY
LINES="$(curl -fs "http://127.0.0.1:$METRICS_PORT/metrics" | grep '^lumen_requests_total' || true)"
echo "$LINES"
