-- wrk script for bench/run.sh: POST a small chat completion, streamed or not, and print
-- one machine-readable line: RESULT <requests/s> <p50 ms> <p99 ms> <non-2xx> <requests>.
-- Environment: BENCH_KEY (the sk- key; ignored by the upstream), BENCH_STREAM=1 to stream,
-- BENCH_MODEL (default bench-model).
local key = os.getenv("BENCH_KEY") or "sk-none"
local stream = os.getenv("BENCH_STREAM") == "1"
local model = os.getenv("BENCH_MODEL") or "bench-model"

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. key
wrk.body = '{"model":"' .. model .. '","max_tokens":16,"stream":' .. (stream and "true" or "false")
    .. ',"messages":[{"role":"user","content":"Hello benchmark"}]}'

function done(summary, latency, requests)
  local seconds = summary.duration / 1e6
  io.write(string.format("RESULT %.0f %.3f %.3f %d %d\n",
    summary.requests / seconds, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.timeout,
    summary.requests))
end
