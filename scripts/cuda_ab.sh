#!/usr/bin/env bash
# scripts/cuda_ab.sh: two builds of autoglm side by side on the GPU machine, interleaved in one call (base, new, base,
# new, ...), so a change's effect on decode and the phone-agent step is measured against the code before it under the
# same conditions. BASE and NEW are bundles of scripts/cuda_bundle.sh (carry both), MODEL a directory of `autoglm
# random-model`:
#
#   scripts/cuda_ab.sh BASE_BUNDLE NEW_BUNDLE MODEL OUT_DIR [ROUNDS]
#
# Writes OUT_DIR/{decode,agent}_{base,new}<round>.json (scripts/cuda_variants.sh) and prints each build's median and
# range of decode tokens/s (contexts 512 and 2048) and of the agent step's first token and total.
set -uo pipefail
base=$1 new=$2 model=$3 out=$4 rounds=${5:-2}
here=$(dirname "$0")
mkdir -p "$out"
for ((i = 1; i <= rounds; ++i)); do
  for which in base new; do
    bundle=$base
    [ "$which" = new ] && bundle=$new
    for kind in decode agent; do bash "$here/cuda_variants.sh" "$bundle" "$model" "$out" "$kind" "$which$i"; done
  done
done
python3 - "$out" "$rounds" <<'PY'
import json, os, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
def load(kind, which):
    runs = []
    for i in range(1, rounds + 1):
        p = os.path.join(out, f"{kind}_{which}{i}.json")
        if os.path.exists(p):
            runs.append(json.load(open(p)))
    return runs
def line(name, vals):
    if not vals:
        return f"{name}: -"
    return f"{name}: median {statistics.median(vals):.2f} [{min(vals):.2f}, {max(vals):.2f}] over {len(vals)}"
for which in ("base", "new"):
    dec = load("decode", which)
    for ctx in (512, 2048):
        v = [r["kv_cache_tokens_per_s"] for d in dec for r in d["results"] if r["context"] == ctx]
        print("ab", which, line(f"decode tokens/s at {ctx}", v))
    ag = load("agent", which)
    print("ab", which, line("agent first token ms", [t["ttft_ms"] for a in ag for t in a["steps"]]))
    print("ab", which, line("agent total ms", [t["total_ms"] for a in ag for t in a["steps"]]))
    print("ab", which, line("agent decode ms/token", [a["decode_ms_per_token"] for a in ag]))
PY
