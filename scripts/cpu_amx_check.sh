#!/usr/bin/env bash
# scripts/cpu_amx_check.sh: the CPU's bf16 kernels on a machine with AMX (the GPU machine's host Xeon, which also has
# AVX-512 BF16), from a bundle of scripts/cuda_bundle.sh (its bin/ holds test_kernels and autoglm):
#
#   scripts/cpu_amx_check.sh BUNDLE_DIR OUT_DIR [THREADS]
#
# 1. test_kernels' attention_amx, attention_avx512bf16 and gemm tests with the tiles on (the real instructions
#    against their emulation and exact attention) and the harness's ATTENTION_DENSE cases on both CPU backends;
# 2. the harness's dense-attention timings for the vision tower's shapes, interleaved: the cpu-bf16 backend (ROUNDED
#    precision) with the tiles (AMX) and without them (the AVX-512 BF16 dots), and the cpu backend (EXACT: F32);
# 3. scripts/cpu_vision_ab.sh: the 2-block vision tower at 728x728 and 1080x2400, 2 rounds: AMX, AVX-512 BF16
#    (AUTOGLM_CPU_AMX=0) and F32 (AUTOGLM_CPU_BF16_GEMM=0).
# Writes OUT_DIR/{gtest,harness_perf,vision}.txt; prints their last lines. Exit status: the tests' (step 1).
set -uo pipefail
bundle=$1 out=$2 threads=${3:-16}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
[ -x "$bundle/bin/test_kernels" ] && [ -x "$bundle/bin/autoglm" ] || { echo "cpu_amx_check: $bundle is not a bundle" >&2; exit 2; }
source "$here/cuda_bundle_env.sh"
use_cuda_bundle "$(cd "$bundle" && pwd)" "$(dirname "$here")"
bin=$bundle/bin
grep -o 'amx[a-z_0-9]*' /proc/cpuinfo | sort -u | tr '\n' ' ' > "$out/cpu_amx_flags.txt"
AUTOGLM_CPU_AMX=1 timeout 300 "$bin/test_kernels" \
  --gtest_filter='attention_amx*:attention_avx512bf16*:gemm_amx*:gemm_bf16*:*attention_dense_F32_cpu*' \
  > "$out/gtest.txt" 2>&1
rc=$?
for round in 1 2; do
  for variant in "cpu-bf16 1" "cpu-bf16 0" "cpu 1"; do
    set -- $variant
    echo "round $round backend $1 AUTOGLM_CPU_AMX=$2"
    AUTOGLM_CPU_AMX=$2 timeout 120 "$bin/test_kernels" --perf --threads "$threads" --backend "$1" --filter "heads=12" \
      --no-pool 2>&1 | grep attention_dense
  done
done > "$out/harness_perf.txt" 2>&1
timeout 420 bash "$here/cpu_vision_ab.sh" "$bundle" "$out/vision" "$threads" 2 728x728,1080x2400 \
  amx=AUTOGLM_CPU_AMX=1 avx512bf16=AUTOGLM_CPU_AMX=0 f32=AUTOGLM_CPU_BF16_GEMM=0 > "$out/vision.txt" 2>&1
rm -rf "$out/vision/model"
tail -4 "$out/gtest.txt"
cat "$out/harness_perf.txt" "$out/vision.txt" | tail -24
exit $rc
