#!/usr/bin/env bash
# scripts/cuda_profile_decode.sh: where a decode step's GPU time goes, kernel by kernel (Nsight Compute's
# gpu__time_duration of every launch, summed per kernel name), on a random model with the real 9B layer
# dimensions and few layers. Runs on the GPU machine over a bundle of scripts/cuda_bundle.sh:
#
#   scripts/cuda_profile_decode.sh BUNDLE OUT_DIR [LAYERS] [CONTEXT] [STEPS] [decode|prefill|vision]
#
# Writes OUT_DIR/<mode>_kernels.csv (raw ncu rows) and OUT_DIR/<mode>_kernels.txt (per kernel: launches, total
# and mean microseconds, share). prefill: one prompt of CONTEXT tokens (and one decode step) instead of STEPS decode
# steps over a context that is only pretended (--fake-context); vision: one 1080x2400 screenshot through a vision tower
# of one block (CONTEXT and STEPS unused). Graphs are off (AUTOGLM_CUDA_GRAPHS=0) so each launch is profiled on its own;
# ncu serializes launches, so the sum is GPU time without launch gaps.
set -euo pipefail
bundle=$(cd "$1" && pwd); out=$2; layers=${3:-4}; context=${4:-512}; steps=${5:-8}; mode=${6:-decode}
mkdir -p "$out"
source "$(dirname "$0")/cuda_bundle_env.sh"
use_cuda_bundle "$bundle" "$PWD"
model=/tmp/profile-model-$layers
[ -f "$model/config.json" ] || "$bundle/bin/autoglm" random-model -o "$model" --layers "$layers" --vision-depth 1 >/dev/null
ncu=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
if [ "$mode" = vision ]; then
  run_args=(bench-vision -m "$model" --device cuda:0 --sizes 1080x2400 --reps 1); steps=1
elif [ "$mode" = prefill ]; then
  run_args=(bench -m "$model" --device cuda:0 --kv-type bf16 --contexts "$context" --decode-tokens 1 --recompute-reps 0); steps=1
else
  run_args=(bench -m "$model" --device cuda:0 --kv-type bf16 --fake-context --contexts "$context" --decode-tokens "$steps"
            --recompute-reps 0)
fi
AUTOGLM_CUDA_GRAPHS=0 "$ncu" --clock-control none --metrics gpu__time_duration.sum --csv \
  "$bundle/bin/autoglm" "${run_args[@]}" > "$out/${mode}_kernels.csv" 2> "$out/${mode}_ncu.log"
python3 - "$out/${mode}_kernels.csv" "$steps" > "$out/${mode}_kernels.txt" <<'PY'
import csv, sys, collections
rows = [r for r in csv.reader(open(sys.argv[1])) if len(r) > 10]
head = rows[0]; rows = rows[1:]
ki, mi, vi, ui = head.index("Kernel Name"), head.index("Metric Name"), head.index("Metric Value"), head.index("Metric Unit")
tot = collections.defaultdict(float); cnt = collections.Counter()
for r in rows:
    if r[mi] != "gpu__time_duration.sum": continue
    v = float(r[vi].replace(",", "")); u = r[ui]
    us = v / 1000 if u == "nsecond" or u == "ns" else v * 1000 if u in ("msecond", "ms") else v
    name = r[ki].split("(")[0][:90]
    tot[name] += us; cnt[name] += 1
all_us = sum(tot.values())
print(f"{'kernel':90s} {'launches':>8s} {'total us':>10s} {'mean us':>8s} {'share':>6s}")
for name, us in sorted(tot.items(), key=lambda kv: -kv[1]):
    print(f"{name:90s} {cnt[name]:8d} {us:10.1f} {us/cnt[name]:8.2f} {100*us/all_us:5.1f}%")
print(f"total {all_us:.1f} us over all launches (load, warm-up and {sys.argv[2]} timed steps)")
PY
cat "$out/${mode}_kernels.txt"
