#!/usr/bin/env bash
# Fuzzes the hand-written parsers of the inference path (Sources/WireFormats: the JSON reader,
# the SSE splitter, the multipart field reader, the AWS event stream decoder) with libFuzzer, for a bounded time each.
#
# Builds the fuzz-* products with -sanitize=fuzzer,address into .build-fuzz/ (only WireFormats
# and NIOCore beneath it, so the build is short), then runs each for FUZZ_SECONDS (default 60)
# from the committed seed corpus in Fuzz/Corpus/<target>/ (new inputs go to a scratch folder).
# A crash fails the script and leaves its input in .build-fuzz/crashes/: add it to
# Fuzz/Corpus/<target>/ as crash-<what>, fix the parser, and `swift test` replays it from then
# on (WireFormatsTests). Reproduce one with the ordinary build:
#   swift run fuzz-json .build-fuzz/crashes/json/crash-…
#
# Usage: scripts/fuzz.sh [json|sse|multipart|eventstream …]   (default: all four)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${FUZZ_SECONDS:-60}"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(json sse multipart eventstream)

scratch=.build-fuzz
mkdir -p "$scratch"
flags=(-c debug --scratch-path "$scratch" -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library -Xswiftc -DFUZZING)
for target in "${targets[@]}"; do
  echo "== fuzz: building fuzz-$target" >&2
  swift build "${flags[@]}" --product "fuzz-$target" >"$scratch/build.log" 2>&1 || { cat "$scratch/build.log" >&2; exit 1; }
done
bin="$(swift build "${flags[@]}" --show-bin-path)"

status=0
for target in "${targets[@]}"; do
  work="$scratch/work/$target"
  crashes="$scratch/crashes/$target"
  rm -rf "$work"
  mkdir -p "$work" "$crashes"
  echo "== fuzz: fuzz-$target for ${seconds}s from Fuzz/Corpus/$target" >&2
  if ! "$bin/fuzz-$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
      -artifact_prefix="$crashes/" -print_final_stats=1 "$work" "Fuzz/Corpus/$target" 2>"$scratch/$target.log"; then
    tail -n 60 "$scratch/$target.log" >&2
    echo "fuzz: fuzz-$target found a crash; its input is in $crashes/ (see scripts/fuzz.sh)" >&2
    status=1
  else
    grep -E "^stat::number_of_executed_units|^stat::peak_rss_mb|cov:" "$scratch/$target.log" | tail -n 3 >&2 || true
  fi
done
exit $status
