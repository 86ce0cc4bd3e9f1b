#!/bin/bash
# bench/eval/quality.sh: the quality table of bench/results/quality.md. `autoglm eval --quant TYPE` for each weight
# type on the demo model (the whole text) and on a random-weight model with the real 9B dimensions and few decoder
# layers (its first --max-tokens tokens; random weights make its perplexity meaningless, but KL and top-1 still
# compare the formats on the real matrix shapes). Writes one JSON per run to OUT and prints a markdown table.
# Usage: bench/eval/quality.sh [BUILD_DIR] [OUT_DIR]   (env: LAYERS=2 MAX_TOKENS=512 THREADS=2 TYPES="q8_0 ...")
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${1:-$root/build/release}/tools/autoglm
out=${2:-$(mktemp -d)}
layers=${LAYERS:-2}
max_tokens=${MAX_TOKENS:-512}
threads=${THREADS:-2}
types=${TYPES:-"q8_0 q6_k q5_k q4_k q4_0 i8"}
text=$root/bench/eval/phone_agent_text.txt
big=$out/random-9b-${layers}l
mkdir -p "$out"
[ -f "$big/config.json" ] || "$bin" random-model -o "$big" --layers "$layers" --vision-depth 1 >&2
for q in $types; do
  "$bin" eval -m "$root/models/demo" --quant "$q" --text "$text" --ctx 512 --threads "$threads" --json \
    -o "$out/demo_$q.json" > /dev/null
  # The random checkpoint has no tokenizer: the demo's tokenizes the text (its ids lie inside the real vocabulary).
  "$bin" eval -m "$big" --tokenizer "$root/models/demo" --quant "$q" --text "$text" --ctx 512 \
    --max-tokens "$max_tokens" --threads "$threads" --json -o "$out/big_$q.json" > /dev/null
done
python3 - "$out" $types <<'EOF'
import json, sys
out, types = sys.argv[1], sys.argv[2:]
print('| model | type | positions | KL mean | KL p99 | top-1 | ppl ref | ppl quant | soft CE T=5 | KL T=5 |')
print('|---|---|---|---|---|---|---|---|---|---|')
for m in ('demo', 'big'):
    for q in types:
        d = json.load(open(f'{out}/{m}_{q}.json'))
        print(f"| {m} | {q} | {d['n_positions']} | {d['kl_mean']:.3g} | {d['kl_p99']:.3g} | {d['top1_agreement']:.4f} | "
              f"{d['ppl_ref']:.4g} | {d['ppl_quant']:.4g} | {d['soft_ce_t']:.5g} | {d['kl_t']:.3g} |")
EOF
