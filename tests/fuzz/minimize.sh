#!/usr/bin/env bash
# tests/fuzz/minimize.sh TARGET INPUT [SECONDS]: shrinks a crashing input with libFuzzer's -minimize_crash (default
# 60 s) and prints the path of the smallest input that still crashes the same way; reproduce it with
# build/fuzz/tests/fuzz/fuzz_TARGET <path>. Commit it as tests/fuzz/regressions/TARGET/<name> once fixed.
set -euo pipefail
cd "$(dirname "$0")/../.."
target=$1 input=$2 seconds=${3:-60}
bin=build/fuzz/tests/fuzz/fuzz_$target
out=build/fuzz/minimized/$target
mkdir -p "$out"
dest=$out/$(basename "$input").min
nice -n 10 "$bin" -minimize_crash=1 -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
  -exact_artifact_path="$dest" "$input" >"$dest.log" 2>&1 || true
[ -f "$dest" ] || { echo "minimize: no smaller crashing input found (log: $dest.log)" >&2; cp "$input" "$dest"; }
echo "$dest ($(stat -c %s "$dest") bytes, from $(stat -c %s "$input"))"
