#!/usr/bin/env bash
# scripts/tp_check.sh: the multi-GPU runs of issue 13 (tensor parallelism), on a machine with 2+ GPUs, over a
# bundle of scripts/cuda_bundle.sh (or a build folder's binaries with BUNDLE=build/release):
#
#   OUT=DIR scripts/tp_check.sh BUNDLE [MODEL_DIR]
#
# 1. parity: test_cuda's cuda_nccl.* (TP=2/4 against TP=1 on the HF fixtures, the engine on two GPUs);
# 2. nccl_perf: one all-reduce of a decode step's [1, 4096] and a prefill chunk's [512, 4096] on 1/2/4/8 GPUs;
# 3. on a random model with the real 9B dimensions, for TP = 1, 2, 4 (8) as the GPUs allow: batch-1 decode
#    tokens/s (context 512 and 2048) and 64 streams at once (256-token prompts, 64 answer tokens each), then
#    the scaling efficiency (tokens/s at TP=N over N x TP=1's) into $OUT/tp_summary.json.
# NCCL_NVLS_ENABLE=0 stays set (the lent machines require it; the communicator sets it too when unset).
set -uo pipefail
bundle=$(cd "$1" && pwd)
model=${2:-/tmp/random-9b}
OUT=${OUT:-$PWD/tp_check_out}
mkdir -p "$OUT"
export NCCL_NVLS_ENABLE=0
bin=$bundle/bin
[ -x "$bin/autoglm" ] || bin=$bundle/tools  # a build folder
source "$(dirname "$0")/cuda_bundle_env.sh"
use_cuda_bundle "$bundle" "$PWD"
export AUTOGLM_SOURCE_DIR=$PWD
n_gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
echo "GPUs: $n_gpus" | tee "$OUT/tp_machine.txt"
nvidia-smi topo -m >> "$OUT/tp_machine.txt" 2>&1
status=0
test_bin=$bundle/bin/test_cuda; [ -x "$test_bin" ] || test_bin=$bundle/tests/cuda/test_cuda
perf_bin=$bundle/bin/nccl_perf; [ -x "$perf_bin" ] || perf_bin=$bundle/tests/cuda/nccl_perf
"$test_bin" --gtest_filter='cuda_nccl.*' > "$OUT/tp_parity.log" 2>&1 || status=1
grep -E "^\[  (SKIPPED|FAILED) \] [A-Za-z0-9_]+\." "$OUT/tp_parity.log" && [ "$n_gpus" -ge 2 ] && status=1
"$perf_bin" --out "$OUT/nccl_perf.json" > "$OUT/nccl_perf.log" 2>&1 || status=1
[ -f "$model/config.json" ] || "$bin/autoglm" random-model -o "$model" > "$OUT/random_model.log" 2>&1 || status=1
for tp in 1 2 4 8; do
  [ "$tp" -le "$n_gpus" ] || break
  "$bin/autoglm" bench -m "$model" --device cuda:0 --tensor-parallel-size "$tp" --kv-type bf16 --contexts 512,2048 \
    --decode-tokens 64 --recompute-reps 0 --streams 64 --stream-prompt 256 -o "$OUT/tp_bench_$tp.json" \
    > "$OUT/tp_bench_$tp.log" 2>&1 || status=1
done
python3 - "$OUT" > "$OUT/tp_summary.json" <<'PY'
import json, os, sys
out = sys.argv[1]
rows = {}
for tp in (1, 2, 4, 8):
    f = os.path.join(out, f"tp_bench_{tp}.json")
    if not os.path.exists(f): continue
    d = json.load(open(f))
    rows[tp] = {"decode_tokens_per_s": {r["context"]: r["kv_cache_tokens_per_s"] for r in d["results"]},
                "streams_64_tokens_per_s": d.get("throughput", {}).get("output_tokens_per_s")}
base = rows.get(1)
for tp, r in rows.items():
    if base and r["streams_64_tokens_per_s"] and base["streams_64_tokens_per_s"]:
        r["streams_64_scaling_efficiency"] = r["streams_64_tokens_per_s"] / (tp * base["streams_64_tokens_per_s"])
    if base:
        r["decode_speedup_vs_tp1"] = {c: v / base["decode_tokens_per_s"][c] for c, v in r["decode_tokens_per_s"].items()}
nccl = os.path.join(out, "nccl_perf.json")
print(json.dumps({"tp": rows, "nccl": json.load(open(nccl)) if os.path.exists(nccl) else None}, indent=2))
PY
cat "$OUT/tp_summary.json"
exit $status
