#!/usr/bin/env bash
# Lumen at scale: the ledger's hold+settle pairs/s on PostgreSQL beside SQLite, and requests/s
# through 1 and 2 gateway replicas against one services process (accounts, keys, ledger,
# registry) on PostgreSQL — the deployment of the README's "Running at scale", in plaintext on
# loopback.
#
# Usage: bench/scale.sh
#   DURATION=10s CONNECTIONS=32   the load of each wrk run (split over the replicas)
#   PAIRS=100000                  hold+settle pairs for each ledger figure; 0 skips them
#
# Starts a throwaway PostgreSQL 15 (scripts/postgres.sh, fsync on) and the mock upstream
# (bench-upstream); builds in release; installs wrk when missing. Nothing is pinned: on a
# machine of few cores the replicas, the services, PostgreSQL, the upstream and wrk share them,
# and the figures say how the whole deployment does there, not how a replica scales on its own
# machine. Loopback only; everything it starts is stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${DURATION:-10s}"
CONNECTIONS="${CONNECTIONS:-32}"
PAIRS="${PAIRS:-100000}"
UPSTREAM_PORT="${UPSTREAM_PORT:-9700}"
SERVICES_PORT="${SERVICES_PORT:-9882}"
GATEWAY_PORTS=(9880 9881)

command -v wrk >/dev/null || {
    sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq && $sudo_cmd apt-get install -y -qq wrk >/dev/null
}
scripts/setup.sh >/dev/null
for product in lumen bench-upstream bench-ledger; do
    swift build -c release --product "$product" >/dev/null
done
BIN="$(swift build -c release --show-bin-path)"

WORK="$(mktemp -d)"
chmod 755 "$WORK"  # PostgreSQL runs as its own user when root starts it
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    scripts/postgres.sh stop "$WORK/pg" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

SERVER="$(scripts/postgres.sh start "$WORK/pg")"
database() {  # name: a new database on the server, its URL
    psql "$SERVER" -q -c "CREATE DATABASE $1" >/dev/null
    python3 -c 'import sys; from urllib.parse import urlsplit, urlunsplit; print(urlunsplit(urlsplit(sys.argv[1])._replace(path="/" + sys.argv[2])))' "$SERVER" "$1"
}

echo "Lumen at scale: $(nproc) CPUs, PostgreSQL $(psql "$SERVER" -Atc 'SHOW server_version') on loopback (fsync $(psql "$SERVER" -Atc 'SHOW fsync'))"

if [ "$PAIRS" -gt 0 ]; then
    echo
    echo "hold+settle pairs/s, 512 in flight, each answered once durable:"
    printf "%-12s %18s %18s\n" "store" "Meter stream" "in-process"
    pairs() {  # label [--database URL]
        local log="$WORK/pairs.log"
        "$BIN/bench-ledger" --only-pairs --pairs "$PAIRS" --concurrency 512 "${@:2}" >"$log"
        printf "%-12s %18s %18s\n" "$1" \
            "$(awk '/Meter stream/ { for (i = 1; i < NF; i++) if ($(i + 1) == "pairs/s") print $i }' "$log")" \
            "$(awk '/in-process/ { for (i = 1; i < NF; i++) if ($(i + 1) == "pairs/s") print $i }' "$log")"
    }
    pairs SQLite
    pairs PostgreSQL --database "$(database pairs)"
fi

"$BIN/bench-upstream" "$UPSTREAM_PORT" >"$WORK/upstream.log" 2>&1 &
PIDS+=($!)
cat >"$WORK/lumen.yaml" <<YAML
models:
  - name: bench-model
    max_output_tokens: 1024
    vendor: Bench
    scenes: [chat]
    prices: {input: 0.15, output: 0.60}
    backends:
      - {id: local, provider: openai, base_url: "http://127.0.0.1:$UPSTREAM_PORT/v1", timeout_ms: 5000}
YAML
export LUMEN_INTERNAL_TOKEN="$(openssl rand -hex 32)"
export LUMEN_DATABASE="$(database replicas)"
"$BIN/lumen" serve --services accounts,keys,ledger,registry --data-dir "$WORK/data" --config "$WORK/lumen.yaml" \
    --grpc-port "$SERVICES_PORT" --metrics-port 0 --log-level warning >"$WORK/services.log" 2>&1 &
PIDS+=($!)
ADDRESSES=()
for service in accounts keys ledger registry; do ADDRESSES+=("--$service-address" "127.0.0.1:$SERVICES_PORT"); done
start_gateway() {  # index
    "$BIN/lumen" serve --services gateway --data-dir "$WORK/data" --http-port "${GATEWAY_PORTS[$1]}" --metrics-port 0 \
        "${ADDRESSES[@]}" --log-level warning >"$WORK/gateway-$1.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 1 300); do
        if curl -fs -o /dev/null "http://127.0.0.1:${GATEWAY_PORTS[$1]}/healthz"; then return 0; fi
        sleep 0.1
    done
    echo "bench: gateway $1 did not come up" >&2; cat "$WORK/gateway-$1.log" "$WORK/services.log" >&2; exit 1
}
start_gateway 0
"$BIN/lumen" admin bootstrap --org Bench --admin-email bench@bench.test --data-dir "$WORK/data" >"$WORK/bootstrap.json"
MT="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["management_token"])' "$WORK/bootstrap.json")"
KEY="$(curl -fs "http://127.0.0.1:${GATEWAY_PORTS[0]}/v1/management/api-keys" -H "Authorization: Bearer $MT" \
    -d '{"name": "bench"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')"

load() {  # replicas: wrk on each, CONNECTIONS split over them, at once; prints the sums
    local count="$1" index wrk=()
    for index in $(seq 0 $((count - 1))); do
        for _ in $(seq 1 100); do  # the replica learns of the key through its watch
            curl -fs -o /dev/null -H "Authorization: Bearer $KEY" "http://127.0.0.1:${GATEWAY_PORTS[$index]}/v1/models" && break
            sleep 0.05
        done
        BENCH_KEY="$KEY" BENCH_STREAM=0 wrk -t1 -c"$((CONNECTIONS / count))" -d"$DURATION" -s bench/chat.lua \
            "http://127.0.0.1:${GATEWAY_PORTS[$index]}/v1/chat/completions" >"$WORK/wrk-$index.log" &
        wrk+=($!)
    done
    wait "${wrk[@]}"
    local rps=0 errors=0 p99=0
    for index in $(seq 0 $((count - 1))); do
        read -r _ r _ p e _ <<<"$(grep '^RESULT' "$WORK/wrk-$index.log")"
        rps=$((rps + r)); errors=$((errors + e))
        p99="$(python3 -c "print(max($p99, $p))")"
    done
    printf "%-34s %9s %9s %7s\n" "$count gateway replica(s)" "$rps" "$p99" "$errors"
}
echo
echo "through gateway replicas, services and ledger on PostgreSQL: $DURATION, $CONNECTIONS connections over the replicas"
printf "%-34s %9s %9s %7s\n" "scenario" "req/s" "p99 ms" "errors"
load 1
start_gateway 1
load 2
CHECK="$("$BIN/lumen" admin ledger check --data-dir "$WORK/data")"
python3 - "$CHECK" <<'PY'
import json, sys
report = json.loads(sys.argv[1])
print(f"\nledger check on PostgreSQL: ok={report['ok']}, {report['pools']} pools, {report['open_holds']} open holds")
sys.exit(0 if report["ok"] else 1)
PY
