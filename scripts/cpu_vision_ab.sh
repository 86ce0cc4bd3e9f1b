#!/usr/bin/env bash
# scripts/cpu_vision_ab.sh: the CPU vision encoder under kernel switches, interleaved, on a machine reached with a
# bundle of scripts/cuda_bundle.sh (the GPU machine's host CPU: a 16-core AMX Xeon) or on a local build:
#
#   scripts/cpu_vision_ab.sh BUNDLE_OR_BUILD_BIN OUT_DIR THREADS ROUNDS SIZES NAME=VAR=VALUE[,VAR=VALUE] ...
#
# Makes (once, in OUT_DIR/model) a random checkpoint with the 9B vision tower's dimensions and 2 of its 24 blocks
# (`autoglm random-model --layers 1 --vision-depth 2`; VISION_DEPTH=24 for the whole tower), then per round runs
# `autoglm bench-vision --device cpu --threads THREADS --sizes SIZES --reps 1` once per variant (NAME=default: no
# switch) into OUT_DIR/<NAME>_<round>.json, and prints each variant's encode seconds per size (median, range).
set -uo pipefail
bin=$1 out=$2 threads=$3 rounds=$4 sizes=$5
shift 5
here=$(cd "$(dirname "$0")" && pwd)
if [ -d "$bin/bin" ]; then
  source "$here/cuda_bundle_env.sh"
  use_cuda_bundle "$(cd "$bin" && pwd)" "$(dirname "$here")"
  bin=$bin/bin
fi
mkdir -p "$out"
model=$out/model
if [ ! -f "$model/config.json" ]; then
  "$bin/autoglm" random-model -o "$model" --layers 1 --vision-depth "${VISION_DEPTH:-2}" > "$out/random_model.log" 2>&1 ||
    { echo "cpu_vision_ab: random-model failed (see $out/random_model.log)" >&2; exit 1; }
fi
for ((i = 1; i <= rounds; ++i)); do
  for variant in "$@"; do
    name=${variant%%=*}
    settings=()
    if [ "$name" != "$variant" ]; then IFS=',' read -r -a settings <<< "${variant#*=}"; fi
    start=$(date +%s)
    env "${settings[@]}" "$bin/autoglm" bench-vision -m "$model" --device cpu --threads "$threads" --sizes "$sizes" \
      --reps 1 -o "$out/${name}_$i.json" > "$out/${name}_$i.log" 2>&1
    echo "cpu_vision_ab: $name round $i (${settings[*]:-no switch}): rc $? in $(( $(date +%s) - start )) s"
  done
done
python3 - "$out" "$rounds" "$@" <<'PY'
import json, os, statistics, sys
out, rounds, variants = sys.argv[1], int(sys.argv[2]), [v.split("=", 1)[0] for v in sys.argv[3:]]
for name in variants:
    by_size = {}
    for i in range(1, rounds + 1):
        p = os.path.join(out, f"{name}_{i}.json")
        if not os.path.exists(p):
            continue
        for r in json.load(open(p)).get("results", []):
            by_size.setdefault(f"{r['width']}x{r['height']}", []).append(r["encode_ms"] / 1000.0)
    for size, v in by_size.items():
        print(f"vision {name} {size}: median {statistics.median(v):.2f} s [{min(v):.2f}, {max(v):.2f}] over {len(v)}")
PY
