#!/usr/bin/env bash
# scripts/cuda_variants.sh: the same benchmark under several kernel switches in one device call (the environment
# variables each kernel file documents: AUTOGLM_CUDA_GEMV_PREFETCH, AUTOGLM_CUDA_DENSE_ATTENTION, ...), on the GPU
# machine over a bundle of scripts/cuda_bundle.sh and a model of `autoglm random-model`:
#
#   scripts/cuda_variants.sh BUNDLE MODEL OUT_DIR decode|vision|agent NAME=VAR=VALUE[,VAR=VALUE] ...
#
# decode: `autoglm bench` at contexts 512 and 2048 (32 decoded tokens, bf16 KV); vision: `bench-vision` at
# 336x336 and 1080x2400; agent: `bench-agent`. Each variant writes OUT_DIR/<kind>_<NAME>.json and .log, runs
# under a 150 s limit, and a failure does not stop the next one. NAME=default runs with no switch set.
set -uo pipefail
bundle=$(cd "$1" && pwd); model=$2; out=$3; kind=$4; shift 4
mkdir -p "$out"
source "$(dirname "$0")/cuda_bundle_env.sh"
use_cuda_bundle "$bundle" "$PWD"
case "$kind" in
  decode) args=(bench -m "$model" --device cuda:0 --kv-type bf16 --contexts 512,2048 --decode-tokens 32
                --recompute-reps 0) ;;
  vision) args=(bench-vision -m "$model" --device cuda:0 --sizes 336x336,1080x2400 --reps 3) ;;
  agent) args=(bench-agent -m "$model" --device cuda:0 --kv-type bf16 --reps 3) ;;
  *) echo "cuda_variants: kind must be decode, vision or agent" >&2; exit 2 ;;
esac
for variant in "$@"; do
  name=${variant%%=*}
  settings=()
  if [ "$name" != "$variant" ]; then IFS=',' read -r -a settings <<< "${variant#*=}"; fi
  start=$(date +%s)
  env "${settings[@]}" timeout 150 "$bundle/bin/autoglm" "${args[@]}" -o "$out/${kind}_$name.json" \
    > "$out/${kind}_$name.log" 2>&1
  echo "cuda_variants: $kind $name (${settings[*]:-no switch}): rc $? in $(( $(date +%s) - start )) s"
done
