#!/usr/bin/env bash
# Lumen's benchmark: one run measures, side by side, on the same upstream — nginx serving fixed
# OpenAI-shaped answers from memory (Debian's nginx; bench/nginx_upstream.py), directly, after
# 2 ms for the one-connection rows — nginx as a reverse proxy (the physical floor), the bare
# proxy floor (Hummingbird + Lumen's upstream client, nothing between; and the same proxy on
# AsyncHTTPClient), Lumen with its default settings (full governance, durable ledger, the access
# log at info), a second Lumen with tracing on (`--otlp-endpoint`, every request sampled,
# exported to bench-otlp-sink, a collector that takes the spans without decoding them) and
# LiteLLM (PyPI litellm[proxy], pinned) — then the providers' translations (bench-upstream
# answers in every provider's format), the ledger's hold+settle throughput on SQLite and on
# PostgreSQL, the RPC core on the wire, the cost of 20,000 keys and a soak; it ends with the
# side-by-side table and the table of the performance targets.
#
# Usage: bench/run.sh
#   DURATION=10s CONNECTIONS=32   the load of each wrk run
#   ROUNDS=3                      rounds of the rows the targets compare (nginx as a proxy, the
#                                 floor and Lumen: JSON and streaming at 32 connections, one
#                                 connection on the 2 ms upstream; the ledger's pairs on SQLite
#                                 and PostgreSQL), taken in turn; the targets use each row's median
#   LITELLM=1                     0 leaves LiteLLM out (its first install takes minutes, into .build-litellm/)
#   PG=1                          0 leaves out the PostgreSQL pairs (scripts/postgres.sh starts a server)
#   SOAK=600                      seconds of the soak at SOAK_RATE (1000) requests/s; 0 skips it
#   KEYS=20000                    keys created for the key-cost figures; 0 skips them
#   PAIRS=200000                  hold+settle pairs for the ledger figure; 0 skips it
#   RPC_CALLS=200000              calls per RPC figure (h2load -c 4 -m 32); 0 skips them. The RPC
#                                 floor (bench-rpc-floor: grpc-swift answering a fixed message) is
#                                 timed the same way
#
# The gateways and the floors are each pinned to CPU 0 with taskset; the upstreams and the
# load generators (wrk, h2load) share CPU 1. CPU per request is read from the process's own
# counters (/proc/<pid>/stat, user + system; LiteLLM's with its children) around each run.
# Builds in release; installs wrk, h2load (nghttp2-client), protoc, nginx and its echo module
# with apt-get when missing. Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${DURATION:-10s}"
ROUNDS="${ROUNDS:-3}"
CONNECTIONS="${CONNECTIONS:-32}"
SOAK="${SOAK:-600}"
SOAK_RATE="${SOAK_RATE:-1000}"
KEYS="${KEYS:-20000}"
PAIRS="${PAIRS:-200000}"
RPC_CALLS="${RPC_CALLS:-200000}"
UPSTREAM_PORT="${UPSTREAM_PORT:-9700}"
GATEWAY_PORT="${GATEWAY_PORT:-9780}"
METRICS_PORT="${METRICS_PORT:-9781}"
GRPC_PORT="${GRPC_PORT:-9782}"
FLOOR_PORT="${FLOOR_PORT:-9790}"
RPC_FLOOR_PORT="${RPC_FLOOR_PORT:-9791}"
AHC_FLOOR_PORT="${AHC_FLOOR_PORT:-9792}"
TRACED_PORT="${TRACED_PORT:-9783}"      # the same Lumen exporting traces (--otlp-endpoint), and its other ports
TRACED_GRPC_PORT="${TRACED_GRPC_PORT:-9784}"
TRACED_METRICS_PORT="${TRACED_METRICS_PORT:-9785}"
OTLP_PORT="${OTLP_PORT:-9793}"           # bench-otlp-sink, the collector it exports to
NGINX_PORT="${NGINX_PORT:-9710}"         # nginx: JSON, always SSE, JSON after 2 ms
NGINX_SSE_PORT="${NGINX_SSE_PORT:-9711}"
NGINX_SLOW_PORT="${NGINX_SLOW_PORT:-9712}"
PROXY_PORT="${PROXY_PORT:-9713}"         # nginx as a reverse proxy to the first and the third
PROXY_SLOW_PORT="${PROXY_SLOW_PORT:-9714}"
FLOOR_SSE_PORT="${FLOOR_SSE_PORT:-9715}" # the floors in front of the other two nginx ports
FLOOR_SLOW_PORT="${FLOOR_SLOW_PORT:-9716}"
AHC_FLOOR_SLOW_PORT="${AHC_FLOOR_SLOW_PORT:-9717}"
LITELLM="${LITELLM:-1}"
LITELLM_PORT="${LITELLM_PORT:-9796}"
LITELLM_SPEC="${LITELLM_SPEC:-litellm[proxy]==1.106.2}"
PG="${PG:-1}"

missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v h2load >/dev/null || missing+=(nghttp2-client)
command -v protoc >/dev/null || missing+=(protobuf-compiler)
command -v nginx >/dev/null || missing+=(nginx)
[ -f /usr/lib/nginx/modules/ngx_http_echo_module.so ] || missing+=(libnginx-mod-http-echo)
if [ ${#missing[@]} -gt 0 ]; then
    sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    # Debian's nginx package starts a system nginx unless told not to.
    printf '#!/bin/sh\nexit 101\n' | $sudo_cmd tee /usr/sbin/policy-rc.d >/dev/null && $sudo_cmd chmod +x /usr/sbin/policy-rc.d
    $sudo_cmd apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
    $sudo_cmd rm -f /usr/sbin/policy-rc.d
fi
if [ "$LITELLM" = 1 ] && ! .build-litellm/bin/python -c 'import litellm' 2>/dev/null; then
    echo "bench: installing $LITELLM_SPEC into .build-litellm/ (once; minutes)" >&2
    python3 -m venv .build-litellm && .build-litellm/bin/python -m pip install -q "$LITELLM_SPEC" >&2
fi
scripts/setup.sh >/dev/null
for product in lumen bench-upstream bench-proxy-floor bench-rpc-floor bench-ledger bench-otlp-sink; do
    swift build -c release --product "$product" >/dev/null
done
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
TICKS="$(getconf CLK_TCK)"

tree() {  # pid: it and its descendants
    echo "$1"
    local child
    for child in $(pgrep -P "$1" || true); do tree "$child"; done
}
cpu_ticks() {  # pid: user + system time in clock ticks, its descendants' included
    local total=0 pid
    for pid in $(tree "$1"); do
        total=$(( total + $(awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$pid/stat" 2>/dev/null || echo 0) ))
    done
    echo "$total"
}
rss_mb() {  # pid: resident memory in MB, its descendants' included
    local pid
    for pid in $(tree "$1"); do awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" 2>/dev/null; done \
        | awk '{ kb += $1 } END { printf "%.0f", kb / 1024 }'
}

taskset -c "$other_cpu" "$BIN/bench-upstream" "$UPSTREAM_PORT" >"$WORK/upstream.log" 2>&1 &
UPSTREAM_PID=$!; PIDS+=($UPSTREAM_PID)
# nginx: the upstream (on the load's core) and the reverse proxy (on the gateway's), one worker each.
mkdir -p "$WORK/nginx-tmp"
python3 bench/nginx_upstream.py upstream "$WORK" "$NGINX_PORT" "$NGINX_SSE_PORT" "$NGINX_SLOW_PORT" >"$WORK/nginx-upstream.conf"
python3 bench/nginx_upstream.py proxy "$WORK" "$PROXY_PORT" "$NGINX_PORT" "$PROXY_SLOW_PORT" "$NGINX_SLOW_PORT" >"$WORK/nginx-proxy.conf"
taskset -c "$other_cpu" nginx -c "$WORK/nginx-upstream.conf" -g 'daemon off;' >"$WORK/nginx-upstream.log" 2>&1 &
NGINX_PID=$!; PIDS+=($NGINX_PID)
taskset -c "$gateway_cpu" nginx -c "$WORK/nginx-proxy.conf" -g 'daemon off;' >"$WORK/nginx-proxy.log" 2>&1 &
PROXY_PID=$!; PIDS+=($PROXY_PID)
NG="http://127.0.0.1:$NGINX_PORT/v1"; NG_SSE="http://127.0.0.1:$NGINX_SSE_PORT/v1"; NG_SLOW="http://127.0.0.1:$NGINX_SLOW_PORT/v1"

# The floor: Hummingbird + Lumen's upstream client with nothing between, on the gateway's core,
# one in front of each nginx port; and the same proxy on AsyncHTTPClient (what Lumen used
# before its own client).
floor() {  # port upstream log [flags]
    taskset -c "$gateway_cpu" "$BIN/bench-proxy-floor" "$1" "$2" "${@:4}" >"$WORK/$3.log" 2>&1 &
    PIDS+=($!)
}
floor "$FLOOR_PORT" "$NG" floor; FLOOR_PID=$!
floor "$FLOOR_SSE_PORT" "$NG_SSE" floor-sse; FLOOR_SSE_PID=$!
floor "$FLOOR_SLOW_PORT" "$NG_SLOW" floor-slow; FLOOR_SLOW_PID=$!
floor "$AHC_FLOOR_PORT" "$NG" ahc-floor --client async-http-client; AHC_FLOOR_PID=$!
floor "$AHC_FLOOR_SLOW_PORT" "$NG_SLOW" ahc-floor-slow --client async-http-client; AHC_FLOOR_SLOW_PID=$!
# The RPC floor: grpc-swift's HTTP/2 server answering GetOrganization with a fixed message.
taskset -c "$gateway_cpu" "$BIN/bench-rpc-floor" "$RPC_FLOOR_PORT" >"$WORK/rpc-floor.log" 2>&1 &
RPC_FLOOR_PID=$!; PIDS+=($RPC_FLOOR_PID)

cat >"$WORK/lumen.yaml" <<YAML
models:
  - name: bench-model
    max_output_tokens: 1024
    vendor: Bench
    scenes: [chat]
    prices: {input: 0.15, output: 0.60}
    backends:
      - {id: local, provider: openai, base_url: "$NG", timeout_ms: 5000}
  - name: bench-model-stream
    max_output_tokens: 1024
    vendor: Bench
    scenes: [chat]
    prices: {input: 0.15, output: 0.60}
    backends:
      - {id: local, provider: openai, base_url: "$NG_SSE", timeout_ms: 5000}
  - name: bench-slow
    max_output_tokens: 1024
    vendor: Bench
    scenes: [chat]
    prices: {input: 0.15, output: 0.60}
    backends:
      - {id: local, provider: openai, base_url: "$NG_SLOW", timeout_ms: 5000}
  - name: bench-translated
    max_output_tokens: 1024
    vendor: Bench
    scenes: [chat]
    prices: {input: 0.15, output: 0.60}
    backends:
      - {id: local, provider: openai, base_url: "http://127.0.0.1:$UPSTREAM_PORT/v1", timeout_ms: 5000}
  - name: bench-claude
    max_output_tokens: 1024
    vendor: Bench
    scenes: [chat]
    prices: {input: 0.15, output: 0.60}
    backends:
      - {id: local, provider: anthropic, base_url: "http://127.0.0.1:$UPSTREAM_PORT", timeout_ms: 5000}
  - name: bench-azure
    max_output_tokens: 1024
    vendor: Bench
    scenes: [chat]
    prices: {input: 0.15, output: 0.60}
    backends:
      - {id: local, provider: azure, base_url: "http://127.0.0.1:$UPSTREAM_PORT", upstream_model: bench, timeout_ms: 5000}
  - name: bench-gemini
    max_output_tokens: 1024
    vendor: Bench
    scenes: [chat]
    prices: {input: 0.15, output: 0.60}
    backends:
      - {id: local, provider: gemini, base_url: "http://127.0.0.1:$UPSTREAM_PORT", upstream_model: bench, timeout_ms: 5000}
  - name: bench-bedrock
    max_output_tokens: 1024
    vendor: Bench
    scenes: [chat]
    prices: {input: 0.15, output: 0.60}
    backends:
      - {id: local, provider: bedrock, region: us-east-1, base_url: "http://127.0.0.1:$UPSTREAM_PORT", upstream_model: "bench:0",
         timeout_ms: 5000}
YAML
# Bedrock requests are signed (SigV4) with these keys; the mock upstream does not check them.
AWS_ACCESS_KEY_ID=AKIDBENCH AWS_SECRET_ACCESS_KEY=bench-secret \
    taskset -c "$gateway_cpu" "$BIN/lumen" serve --data-dir "$WORK/data" --config "$WORK/lumen.yaml" \
    --http-port "$GATEWAY_PORT" --grpc-port "$GRPC_PORT" --metrics-port "$METRICS_PORT" >"$WORK/lumen.log" 2>&1 &
LUMEN_PID=$!; PIDS+=($LUMEN_PID)
# The same Lumen with tracing on (every request sampled), exporting to a sink that takes the
# spans without decoding them; it idles on the gateway's core while the other is measured.
taskset -c "$other_cpu" "$BIN/bench-otlp-sink" "$OTLP_PORT" >"$WORK/otlp.log" 2>&1 &
OTLP_PID=$!; PIDS+=($OTLP_PID)
taskset -c "$gateway_cpu" "$BIN/lumen" serve --data-dir "$WORK/traced" --config "$WORK/lumen.yaml" \
    --http-port "$TRACED_PORT" --grpc-port "$TRACED_GRPC_PORT" --metrics-port "$TRACED_METRICS_PORT" \
    --otlp-endpoint "http://127.0.0.1:$OTLP_PORT" >"$WORK/traced.log" 2>&1 &
TRACED_PID=$!; PIDS+=($TRACED_PID)
# LiteLLM (no database, production logging), on the gateway's core, the same three upstreams.
LITELLM_PID=""
if [ "$LITELLM" = 1 ]; then
    cat >"$WORK/litellm.yaml" <<YAML
model_list:
  - {model_name: bench-model, litellm_params: {model: openai/gpt-4o-mini, api_base: "$NG", api_key: sk-upstream}}
  - {model_name: bench-model-stream, litellm_params: {model: openai/gpt-4o-mini, api_base: "$NG_SSE", api_key: sk-upstream}}
  - {model_name: bench-slow, litellm_params: {model: openai/gpt-4o-mini, api_base: "$NG_SLOW", api_key: sk-upstream}}
general_settings: {master_key: sk-litellm-bench, disable_spend_logs: true, disable_error_logs: true}
litellm_settings: {set_verbose: false, json_logs: true, request_timeout: 600}
YAML
    LITELLM_LOG=ERROR LITELLM_MODE=PRODUCTION LITELLM_LOCAL_MODEL_COST_MAP=True \
        taskset -c "$gateway_cpu" .build-litellm/bin/litellm --config "$WORK/litellm.yaml" --host 127.0.0.1 \
        --port "$LITELLM_PORT" --num_workers 1 >"$WORK/litellm.log" 2>&1 &
    LITELLM_PID=$!; PIDS+=($LITELLM_PID)
fi

wait_for() {  # url
    for _ in $(seq 1 300); do
        if curl -fs -o /dev/null "$1"; then return 0; fi
        sleep 0.1
    done
    echo "bench: $1 did not come up" >&2; cat "$WORK/lumen.log" >&2; exit 1
}
wait_for "http://127.0.0.1:$GATEWAY_PORT/healthz"
wait_for "http://127.0.0.1:$TRACED_PORT/healthz"
wait_for "http://127.0.0.1:$NGINX_PORT/v1/models"
wait_for "http://127.0.0.1:$PROXY_PORT/v1/models"
for port in "$FLOOR_PORT" "$FLOOR_SSE_PORT" "$FLOOR_SLOW_PORT" "$AHC_FLOOR_PORT" "$AHC_FLOOR_SLOW_PORT"; do
    for _ in $(seq 1 300); do  # a floor answers 404 to anything but its one route
        curl -s -o /dev/null "http://127.0.0.1:$port/" && break
        sleep 0.1
    done
done

for pid in "$UPSTREAM_PID" "$NGINX_PID" "$PROXY_PID" "$FLOOR_PID" "$FLOOR_SSE_PID" "$FLOOR_SLOW_PID" "$AHC_FLOOR_PID" \
    "$AHC_FLOOR_SLOW_PID" "$RPC_FLOOR_PID" "$LUMEN_PID" "$OTLP_PID" "$TRACED_PID" $LITELLM_PID; do  # a port taken by another process ends one early
    kill -0 "$pid" 2>/dev/null || {
        echo "bench: a server exited at start; are ports 9700-9717, 9780-9796 free?" >&2; exit 1; }
done
if [ -n "$LITELLM_PID" ]; then  # LiteLLM takes a while to import itself
    for _ in $(seq 1 1800); do
        curl -fs -o /dev/null -H 'Authorization: Bearer sk-litellm-bench' -H 'content-type: application/json' \
            -d '{"model":"bench-model","messages":[{"role":"user","content":"hi"}]}' \
            "http://127.0.0.1:$LITELLM_PORT/v1/chat/completions" && break
        kill -0 "$LITELLM_PID" 2>/dev/null || { echo "bench: LiteLLM exited at start" >&2; tail -20 "$WORK/litellm.log" >&2; exit 1; }
        sleep 0.1
    done
fi
bench_key() {  # data-dir port: bootstraps an organisation there and prints an inference key the gateway knows
    "$BIN/lumen" admin bootstrap --org Bench --admin-email bench@bench.test --data-dir "$1" >"$1.bootstrap.json"
    local mt key
    mt="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["management_token"])' "$1.bootstrap.json")"
    key="$(curl -fs "http://127.0.0.1:$2/v1/management/api-keys" -H "Authorization: Bearer $mt" \
        -d '{"name": "bench"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')"
    for _ in $(seq 1 100); do  # the gateway learns of the key through its watch
        curl -fs -o /dev/null -H "Authorization: Bearer $key" "http://127.0.0.1:$2/v1/models" && break
        sleep 0.05
    done
    echo "$key"
}
KEY="$(bench_key "$WORK/data" "$GATEWAY_PORT")"
TRACED_KEY="$(bench_key "$WORK/traced" "$TRACED_PORT")"
MT="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["management_token"])' "$WORK/data.bootstrap.json")"
ORG="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["organization_id"])' "$WORK/data.bootstrap.json")"
declare -A R  # results by name
R[rss_start]="$(rss_mb "$LUMEN_PID")"
# A figure taken in several rounds keeps every round's value; the summary takes their median.
append() {  # name value
    R[$1]="${R[$1]:+${R[$1]} }$2"
}
run() {  # label url stream connections name [pid]; SCRIPT/ROUTE/MODEL pick another request
    local before after line
    before="$( [ -n "${6:-}" ] && cpu_ticks "$6" || echo 0)"
    line="$(BENCH_KEY="$KEY" BENCH_STREAM="$3" BENCH_MODEL="${MODEL:-$( [ "$3" = 1 ] && echo bench-model-stream || echo bench-model)}" \
        taskset -c "$other_cpu" wrk -t1 -c"$4" -d"$DURATION" \
        -s "bench/${SCRIPT:-chat.lua}" "$2/v1/${ROUTE:-chat/completions}" | grep '^RESULT')"
    after="$( [ -n "${6:-}" ] && cpu_ticks "$6" || echo 0)"
    read -r _ rps p50 p99 errors total <<<"$line"
    local cpu="-"
    [ -n "${6:-}" ] && cpu="$(python3 -c "print(f'{($after - $before) / $TICKS * 1000 / max(1, $total):.3f}')")"
    printf "%-36s %9s %9s %9s %9s %7s\n" "$1" "$rps" "$cpu" "$p50" "$p99" "$errors"
    append "rps_$5" "$rps"; append "p50_$5" "$p50"; append "p99_$5" "$p99"; append "cpu_$5" "$cpu"; append "err_$5" "$errors"
}

UP="http://127.0.0.1:$UPSTREAM_PORT"
GW="http://127.0.0.1:$GATEWAY_PORT"
TR="http://127.0.0.1:$TRACED_PORT"
LL="http://127.0.0.1:$LITELLM_PORT"
echo "Lumen bench: $DURATION per run, $CONNECTIONS connections; gateways and floors each pinned to CPU $gateway_cpu, upstreams and load on CPU $other_cpu ($cpus CPUs)"
echo
printf "%-40s %9s %9s %9s %9s %7s\n" "scenario" "req/s" "CPU ms/req" "p50 ms" "p99 ms" "errors"
litellm() {  # label stream connections name [model]: a row for LiteLLM, when it runs
    [ -n "$LITELLM_PID" ] || return 0
    KEY=sk-litellm-bench MODEL="${5:-}" run "$1" "$LL" "$2" "$3" "$4" "$LITELLM_PID"
}
# The rows the targets compare, in groups: taken again in every round after the first.
compared_json() {
    run "nginx as a reverse proxy, JSON" "http://127.0.0.1:$PROXY_PORT" 0 "$CONNECTIONS" np_json "$PROXY_PID"
    run "bare proxy (Lumen's floor), JSON" "http://127.0.0.1:$FLOOR_PORT" 0 "$CONNECTIONS" fl_json "$FLOOR_PID"
    run "through Lumen, JSON" "$GW" 0 "$CONNECTIONS" gw_json "$LUMEN_PID"
}
compared_streaming() {
    run "bare proxy (Lumen's floor), streaming" "http://127.0.0.1:$FLOOR_SSE_PORT" 1 "$CONNECTIONS" fl_sse "$FLOOR_SSE_PID"
    run "through Lumen, streaming" "$GW" 1 "$CONNECTIONS" gw_sse "$LUMEN_PID"
}
compared_one() {  # one connection, the upstream answering 2 ms after each request
    MODEL=bench-slow run "nginx direct, 2 ms, 1 conn" "http://127.0.0.1:$NGINX_SLOW_PORT" 0 1 up_one
    run "bare proxy (Lumen's floor), 2 ms, 1 conn" "http://127.0.0.1:$FLOOR_SLOW_PORT" 0 1 fl_one "$FLOOR_SLOW_PID"
    MODEL=bench-slow run "through Lumen, 2 ms, 1 conn" "$GW" 0 1 gw_one "$LUMEN_PID"
}
run "nginx direct, JSON" "http://127.0.0.1:$NGINX_PORT" 0 "$CONNECTIONS" up_json
compared_json
run "bare proxy on AsyncHTTPClient, JSON" "http://127.0.0.1:$AHC_FLOOR_PORT" 0 "$CONNECTIONS" af_json "$AHC_FLOOR_PID"
KEY="$TRACED_KEY" run "through Lumen, JSON, tracing on" "$TR" 0 "$CONNECTIONS" tr_json "$TRACED_PID"
litellm "through LiteLLM, JSON" 0 "$CONNECTIONS" ll_json
run "nginx direct, streaming" "http://127.0.0.1:$NGINX_SSE_PORT" 1 "$CONNECTIONS" up_sse
compared_streaming
KEY="$TRACED_KEY" run "through Lumen, streaming, tracing on" "$TR" 1 "$CONNECTIONS" tr_sse "$TRACED_PID"
litellm "through LiteLLM, streaming" 1 "$CONNECTIONS" ll_sse
compared_one
run "nginx as a reverse proxy, 2 ms, 1 conn" "http://127.0.0.1:$PROXY_SLOW_PORT" 0 1 np_one "$PROXY_PID"
run "bare proxy on AHC, 2 ms, 1 conn" "http://127.0.0.1:$AHC_FLOOR_SLOW_PORT" 0 1 af_one "$AHC_FLOOR_SLOW_PID"
KEY="$TRACED_KEY" MODEL=bench-slow run "through Lumen, 2 ms, 1 conn, tracing on" "$TR" 0 1 tr_one "$TRACED_PID"
litellm "through LiteLLM, 2 ms, 1 conn" 0 1 ll_one bench-slow
# The compared rows again: this machine's speed moves by tens of percent within minutes, so
# each comparison is the median of rounds taken in turn, not one sample of each.
for round in $(seq 2 "$ROUNDS"); do
    echo "round $round of $ROUNDS"
    compared_json
    compared_streaming
    compared_one
done
R[rss_load]="$(rss_mb "$LUMEN_PID")"; R[rss_floor]="$(rss_mb "$FLOOR_PID")"; R[rss_proxy]="$(rss_mb "$PROXY_PID")"
R[rss_ahc]="$(rss_mb "$AHC_FLOOR_PID")"; [ -n "$LITELLM_PID" ] && R[rss_litellm]="$(rss_mb "$LITELLM_PID")"
# Anthropic's Messages API (Claude Code): passed through to a Claude backend, and translated both
# ways to the OpenAI-format one; then OpenAI chat to each provider: Claude, Gemini and Bedrock
# translated both ways (Bedrock signed, its stream AWS's binary event stream), Azure OpenAI
# routed to a deployment — all on bench-upstream, which answers in every provider's format.
run "bench-upstream direct, JSON" "$UP" 0 "$CONNECTIONS" bu_json
MODEL=bench-translated run "→ OpenAI on bench-upstream, JSON" "$GW" 0 "$CONNECTIONS" openai_json "$LUMEN_PID"
MODEL=bench-translated run "→ OpenAI on bench-upstream, streaming" "$GW" 1 "$CONNECTIONS" openai_sse "$LUMEN_PID"
SCRIPT=messages.lua ROUTE=messages MODEL=bench-claude run "/v1/messages → Claude, streaming" "$GW" 1 "$CONNECTIONS" msg_pass "$LUMEN_PID"
SCRIPT=messages.lua ROUTE=messages MODEL=bench-translated run "/v1/messages → OpenAI, translated" "$GW" 1 "$CONNECTIONS" msg_tr "$LUMEN_PID"
for provider in claude azure gemini bedrock; do
    case $provider in
        claude) label="Claude (translated)" ;; azure) label="Azure OpenAI" ;;
        gemini) label="Gemini (translated)" ;; bedrock) label="Bedrock (translated, signed)" ;;
    esac
    MODEL=bench-$provider run "→ $label, JSON" "$GW" 0 "$CONNECTIONS" "${provider}_json" "$LUMEN_PID"
    MODEL=bench-$provider run "→ $label, streaming" "$GW" 1 "$CONNECTIONS" "${provider}_sse" "$LUMEN_PID"
done
sleep 2  # the last batch of spans exported
R[otlp]="$(tail -1 "$WORK/otlp.log")"; R[otlp_dropped]="$(grep -c 'dropped' "$WORK/traced.log" || true)"
curl -fs "http://127.0.0.1:$METRICS_PORT/metrics" | grep '^lumen_requests_total' || true

# The RPC core on the wire: unary calls with an mt- token, frames built from the protos.
grpc_frame() {  # message-type proto-file text-format out-file
    printf '%s' "$3" | protoc -I proto --encode="$1" "$2" >"$WORK/message.bin"
    python3 - "$WORK/message.bin" "$4" <<'PY'
import struct, sys
body = open(sys.argv[1], "rb").read()
open(sys.argv[2], "wb").write(b"\0" + struct.pack(">I", len(body)) + body)
PY
}
if [ "$RPC_CALLS" -gt 0 ]; then
    echo
    grpc_frame lumen.accounts.v1.GetOrganizationRequest lumen/accounts/v1/accounts.proto "" "$WORK/get-org.bin"
    grpc_frame lumen.ledger.v1.GetPoolRequest lumen/ledger/v1/ledger.proto \
        "owner { type: PRINCIPAL_TYPE_ORGANIZATION id: \"$ORG\" }" "$WORK/get-pool.bin"
    printf "%-36s %9s %9s %9s\n" "RPC (h2load -c 4 -m 32)" "calls/s" "p99 ms" "HTTP 2xx"
    rpc() {  # label path frame name [port]; the p99 from h2load's per-request log
        local out rps ok p99 port="${5:-$GRPC_PORT}"
        # A gRPC refusal is HTTP 200 too: one call first must end with grpc-status 0.
        curl -s --http2-prior-knowledge -o /dev/null -D - -H 'content-type: application/grpc' -H 'te: trailers' \
            -H "authorization: Bearer $MT" --data-binary @"$3" "http://127.0.0.1:$port$2" | grep -qi '^grpc-status: 0' \
            || { echo "bench: $1 does not answer grpc-status 0" >&2; exit 1; }
        out="$(taskset -c "$other_cpu" h2load -n "$RPC_CALLS" -c 4 -m 32 -d "$3" --log-file "$WORK/h2load.log" \
            -H 'content-type: application/grpc' -H 'te: trailers' -H "authorization: Bearer $MT" \
            "http://127.0.0.1:$port$2" 2>&1)"
        rps="$(awk '/^finished in/ { gsub(",", "", $4); printf "%.0f", $4 }' <<<"$out")"
        ok="$(awk '/^status codes:/ { gsub(",", "", $3); print $3 }' <<<"$out")"
        p99="$(awk '{ print $3 }' "$WORK/h2load.log" | sort -n | awk '{ a[NR] = $1 } END { printf "%.3f", a[int(NR * 0.99)] / 1000 }')"
        printf "%-36s %9s %9s %9s\n" "$1" "$rps" "$p99" "$ok"
        R[rpc_$4]=$rps; R[rpc_p99_$4]=$p99
    }
    rpc "floor: grpc-swift, a fixed answer" /lumen.accounts.v1.AccountsService/GetOrganization "$WORK/get-org.bin" floor \
        "$RPC_FLOOR_PORT"
    rpc "Accounts.GetOrganization" /lumen.accounts.v1.AccountsService/GetOrganization "$WORK/get-org.bin" org
    rpc "Ledger.GetPool" /lumen.ledger.v1.LedgerService/GetPool "$WORK/get-pool.bin" pool
fi

# The ledger alone: hold+settle pairs, durable and group-committed.
# Each round, SQLite then PostgreSQL (a server of Debian's on a fresh data directory), each on a
# fresh database; the targets take the medians.
pairs_of() {  # log "in-process"|"Meter stream": that line's pairs/s
    awk -v what="$2" 'index($0, what) { for (i = 1; i < NF; i++) if ($(i + 1) == "pairs/s") { gsub(",", "", $i); print $i } }' "$1"
}
if [ "$PAIRS" -gt 0 ]; then
    for round in $(seq 1 "$ROUNDS"); do
        echo
        "$BIN/bench-ledger" --only-pairs --pairs "$PAIRS" --concurrency 512 >"$WORK/ledger.log"
        sed -n '/hold+settle/,$p' "$WORK/ledger.log"
        append pairs "$(pairs_of "$WORK/ledger.log" in-process)"
        append pairs_stream "$(pairs_of "$WORK/ledger.log" "Meter stream")"
        [ "$PG" = 1 ] || continue
        pg_dir="$(mktemp -u /tmp/lumen-bench-pg.XXXXXX)"  # outside $WORK: the server runs as postgres
        if pg_url="$(scripts/postgres.sh start "$pg_dir" | tail -1)"; then
            "$BIN/bench-ledger" --only-pairs --pairs "$PAIRS" --concurrency 512 --database "$pg_url" >"$WORK/ledger-pg.log" || true
        else
            echo "bench: PostgreSQL did not start; no PostgreSQL pairs" >&2
        fi
        scripts/postgres.sh stop "$pg_dir" >/dev/null 2>&1 || true
        rm -rf "$pg_dir"
        sed -n '/hold+settle/,$p' "$WORK/ledger-pg.log"
        append pairs_pg "$(pairs_of "$WORK/ledger-pg.log" in-process)"
    done
fi

# What keys cost: resident memory per cached key, and the key list.
if [ "$KEYS" -gt 0 ]; then
    echo
    before="$(rss_mb "$LUMEN_PID")"
    printf '{"name": "bench-key"}' >"$WORK/key.json"
    taskset -c "$other_cpu" h2load --h1 -n "$KEYS" -c 8 -d "$WORK/key.json" -H "authorization: Bearer $MT" \
        -H 'content-type: application/json' "$GW/v1/management/api-keys" >"$WORK/keys.log" 2>&1
    grep -q "succeeded, 0 failed" "$WORK/keys.log" || { echo "bench: creating keys failed" >&2; grep -E "requests:|status codes" "$WORK/keys.log" >&2; }
    sleep 2  # the gateway's cache learns of them through its watch
    after="$(rss_mb "$LUMEN_PID")"
    R[key_bytes]="$(python3 -c "print(round(($after - $before) * 1024 * 1024 / $KEYS))")"
    list_ms() {  # url: the median of 5 GETs, in ms
        for _ in 1 2 3 4 5; do
            curl -fs -o /dev/null -w '%{time_total}\n' -H "Authorization: Bearer $MT" "$1"
        done | sort -n | sed -n 3p | awk '{ printf "%.1f", $1 * 1000 }'
    }
    R[list_full]="$(list_ms "$GW/v1/management/api-keys")"
    R[list_page]="$(list_ms "$GW/v1/management/api-keys?page=1&limit=100")"
    echo "$((KEYS + 1)) keys: RSS $before → $after MB (${R[key_bytes]} bytes a key); full list ${R[list_full]} ms, a page of 100 ${R[list_page]} ms"
fi

# The soak: a steady SOAK_RATE requests/s for SOAK seconds; resident memory before and after.
R[rss_before_soak]="$(rss_mb "$LUMEN_PID")"
if [ "$SOAK" -gt 0 ]; then
    echo
    clients=10
    printf '%s' '{"model":"bench-model","max_tokens":16,"messages":[{"role":"user","content":"Hello benchmark"}]}' >"$WORK/soak.json"
    taskset -c "$other_cpu" h2load --h1 -c "$clients" --rps "$((SOAK_RATE / clients))" -D "$SOAK" -d "$WORK/soak.json" \
        -H "authorization: Bearer $KEY" -H 'content-type: application/json' "$GW/v1/chat/completions" >"$WORK/soak.log" 2>&1 || true
    echo "soak, $SOAK s at $SOAK_RATE req/s: $(grep -E '^requests:' "$WORK/soak.log")"
    R[rss_soak]="$(rss_mb "$LUMEN_PID")"
fi

echo
python3 - <<PY
import statistics
r = {$(for k in "${!R[@]}"; do printf '"%s": "%s", ' "$k" "${R[$k]}"; done)}
# A figure taken in several rounds is their median (the rounds are listed at the end).
rounds = {}
for k, v in list(r.items()):
    parts = v.split()
    if len(parts) > 1:
        try: m = statistics.median(float(x) for x in parts)
        except ValueError: continue
        rounds[k] = v
        r[k] = f"{m:.3f}" if k.startswith(("cpu_", "p50_", "p99_")) else f"{m:.0f}"
def num(name):
    try: return float(r.get(name, "nan"))
    except ValueError: return float("nan")
def added(name, what="p50"): return num(f"{what}_{name}_one") - num(f"{what}_up_one")
# Side by side, as issue 35 tabulates it: c=32 on nginx's JSON, c=1 with nginx answering after 2 ms.
print(f"{'target':46} {'JSON req/s':>10} {'CPU ms/req':>10} {'CPU, c=1':>9} {'+p50 c=1':>9} {'+p99 c=1':>9} {'RSS MB':>7}")
for key, name, rss in [("np", "nginx as a reverse proxy (the physical floor)", "rss_proxy"),
                       ("fl", "Hummingbird + Lumen's upstream client (floor)", "rss_floor"),
                       ("af", "Hummingbird + AsyncHTTPClient", "rss_ahc"),
                       ("gw", "Lumen, default settings", "rss_load"),
                       ("tr", "Lumen, tracing every request", ""),
                       ("ll", "LiteLLM 1.106.2", "rss_litellm")]:
    if r.get(f"rps_{key}_json") is None: continue
    print(f"{name:46} {num(f'rps_{key}_json'):>10,.0f} {r.get(f'cpu_{key}_json', '-'):>10} {r.get(f'cpu_{key}_one', '-'):>9} "
          f"{added(key):>9.3f} {added(key, 'p99'):>9.3f} {(r.get(rss, '-') if rss else '-'):>7}")
print(f"streaming: Lumen {r.get('cpu_gw_sse')} ms CPU a request, its floor {r.get('cpu_fl_sse')}, LiteLLM {r.get('cpu_ll_sse', '-')}")
print()
rows = [
    ("JSON c=32, CPU / the floor's", num("cpu_gw_json") / num("cpu_fl_json"), "<=", 2.0,
        f"{r.get('cpu_gw_json')} / {r.get('cpu_fl_json')} ms; nginx {r.get('cpu_np_json')}, LiteLLM {r.get('cpu_ll_json', '-')}"),
    ("streaming c=32, CPU / the floor's", num("cpu_gw_sse") / num("cpu_fl_sse"), "<=", 2.5,
        f"{r.get('cpu_gw_sse')} / {r.get('cpu_fl_sse')} ms"),
    ("added p50 c=1 (2 ms upstream) - floor's", added("gw") - added("fl"), "<=", 0.25,
        f"{added('gw'):.3f} against {added('fl'):.3f} ms"),
    ("added p99 c=1 (2 ms upstream) (ms)", added("gw", "p99"), "<=", 2.0,
        f"p99 {r.get('p99_gw_one')} ms, the upstream's {r.get('p99_up_one')}"),
    ("PostgreSQL / SQLite hold+settle pairs/s", num("pairs_pg") / num("pairs"), ">=", 1.0,
        f"{r.get('pairs_pg', '-')} / {r.get('pairs', '-')}; over the Meter stream {r.get('pairs_stream')}"),
    ("RSS after load (MB)", num("rss_load"), "<=", 100, f"start {r.get('rss_start')}, floor {r.get('rss_floor')}"),
    ("RSS growth over the soak (MB)", num("rss_soak") - num("rss_before_soak"), "<=", 5,
        f"{r.get('rss_before_soak')} -> {r.get('rss_soak')}"),
    ("/v1/messages translated / OpenAI stream, CPU", num("cpu_msg_tr") / num("cpu_openai_sse"), "<=", 1.3,
        f"{r.get('cpu_msg_tr')} / {r.get('cpu_openai_sse')} ms; passed through to Claude {r.get('cpu_msg_pass')} ms"),
    ("hold+settle pairs/s, durable (SQLite)", num("pairs"), ">=", 20000, f"over the Meter stream {r.get('pairs_stream')}"),
    ("bytes per cached key", num("key_bytes"), "<=", 1024, ""),
    ("full key list, $KEYS keys (ms)", num("list_full"), "<=", 200, f"page of 100: {r.get('list_page')} ms"),
    ("GetOrganization calls/s", num("rpc_org"), ">=", 20000,
        f"p99 {r.get('rpc_p99_org')} ms; floor {num('rpc_floor'):,.0f}/s"),
    ("Ledger.GetPool calls/s", num("rpc_pool"), ">=", 20000, f"p99 {r.get('rpc_p99_pool')} ms"),
]
print(f"{'target':44} {'measured':>10} {'target':>10}  met   note")
for name, value, op, target, note in rows:
    if value != value:
        print(f"{name:44} {'-':>10} {op + ' ' + format(target, 'g'):>10}  -     skipped"); continue
    met = value <= target if op == "<=" else value >= target
    shown = f"{value:.3f}" if abs(value) < 10 else f"{value:,.0f}"
    print(f"{name:44} {shown:>10} {op + ' ' + format(target, 'g'):>10}  {'yes' if met else 'NO ':4}  {note}")
print("CPU per request by provider on bench-upstream, JSON / streaming (ms): OpenAI " + f"{r.get('cpu_openai_json')} / {r.get('cpu_openai_sse')}; "
      + "; ".join(f"{name} {r.get(f'cpu_{key}_json')} / {r.get(f'cpu_{key}_sse')} "
                  f"({num(f'cpu_{key}_json') / num('cpu_openai_json'):.2f}x / {num(f'cpu_{key}_sse') / num('cpu_openai_sse'):.2f}x)"
                  for key, name in [("claude", "Claude"), ("azure", "Azure"), ("gemini", "Gemini"), ("bedrock", "Bedrock")]))
print(f"tracing off / on (every request, exported over OTLP/gRPC), CPU per request: JSON {r.get('cpu_gw_json')} / {r.get('cpu_tr_json')} ms "
      f"(+{num('cpu_tr_json') - num('cpu_gw_json'):.3f}), streaming {r.get('cpu_gw_sse')} / {r.get('cpu_tr_sse')} ms "
      f"(+{num('cpu_tr_sse') - num('cpu_gw_sse'):.3f}), one connection {r.get('cpu_gw_one')} / {r.get('cpu_tr_one')} ms, "
      f"added p50 {added('gw'):.3f} / {added('tr'):.3f} ms; "
      f"the collector got {r.get('otlp')} ({r.get('otlp_dropped')} warnings of dropped spans)")
if rounds:
    print("rounds (each row's figures in the order taken; the tables show their medians): "
          + "; ".join(f"{k} {v}" for k, v in sorted(rounds.items()) if k.startswith(("cpu_", "p50_", "p99_", "pairs"))))
print(f"Lumen / LiteLLM, CPU per JSON request: {num('cpu_gw_json') / num('cpu_ll_json'):.3f}; through Lumen / nginx direct, JSON req/s: {num('rps_gw_json') / num('rps_up_json'):.2f}")
PY
