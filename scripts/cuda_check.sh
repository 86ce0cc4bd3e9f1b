#!/usr/bin/env bash
# scripts/cuda_check.sh: the CUDA backend's check on a GPU machine, in ONE command (one device call):
#
#   OUT=/path/to/results scripts/cuda_check.sh            # configure + build (Release, CUDA, -j16), tests, perf
#   OUT=... scripts/cuda_check.sh --skip-build            # reuse $BUILD_DIR (a second call on a warm machine)
#   OUT=... scripts/cuda_check.sh --model-bench           # also: a random-weight 9B checkpoint, decode bench
#   OUT=... scripts/cuda_check.sh --quick                 # shorter perf pass
#   OUT=... scripts/cuda_check.sh --bundle DIR            # no build: the binaries and libraries that
#                                                         # scripts/cuda_bundle.sh packed on another machine
#   PACK=1 OUT=... scripts/cuda_check.sh ...              # end with everything in $OUT/results.tgz (one file
#                                                         # comes back from a device call; the last lines
#                                                         # printed are the headline figures and failures)
#
# Needs nvcc (on PATH or in /usr/local/cuda), cmake, a C++20 compiler and the Debian -dev packages of
# scripts/setup.sh; no network (SKIP_HF=1: no transformers steps; SKIP_ASR=1: no Whisper benchmark). Steps (each logged to $OUT/<step>.log, failures do not stop the later steps):
#   1. configure + build build/cuda-release (-DAUTOGLM_CUDA=ON; CMAKE_CUDA_ARCHITECTURES defaults to 89;90,
#      override with CUDA_ARCHS=...): test_cuda, test_kernels, cuda_perf, autoglm;
#   2. tests/cuda (test_cuda): every CUDA op against the CPU kernels, the tiny checkpoint's HF parity on cuda:0,
#      greedy tokens against the CPU backend. On a GPU machine nothing may skip: a skip fails the step;
#   3. the kernel harness's cuda:0 cases (test_kernels, every op against the double-precision reference);
#   4. perf: cuda_perf (device copy bandwidth measured in the same run, GEMV GB/s and % of it, GEMM TFLOP/s,
#      attention) -> perf.json, and the harness's --perf on cuda:0 -> harness_perf.log;
#   5. (--model-bench) `autoglm random-model` (real 9B dimensions, ~19 GB of disk), `autoglm bench --device
#      cuda:0` prefill and decode at 512 and 2048 tokens of context -> model_bench.json, `autoglm bench-vision`
#      (336x336, 1080x2400) -> vision_bench.json, and the transformers peer on the same checkpoint in the same
#      run (bench/peer/hf_cuda.py) -> hf_peer.json; `autoglm bench-asr` on random whisper-small and
#      large-v3-turbo checkpoints -> asr_bench_<size>.json.
# Results: $OUT/summary.json ({"steps": {name: {"status", "seconds"}}, "perf": ...}), logs, gtest JSON. Exit
# status 0 only when every step passed.
set -uo pipefail
cd "$(dirname "$0")/.."
SRC=$PWD
source scripts/cuda_bundle_env.sh
OUT=${OUT:-$SRC/cuda_check_out}
BUILD_DIR=${BUILD_DIR:-$SRC/build/cuda-release}
JOBS=${JOBS:-16}
STEP_LIMIT=${STEP_LIMIT:-900}  # seconds per step (a device call has 600 s in all: pass less there)
CUDA_ARCHS=${CUDA_ARCHS:-}
skip_build=0 model_bench=0 quick=0 bundle=""
while [ $# -gt 0 ]; do
  case "$1" in
    --skip-build) skip_build=1 ;;
    --model-bench) model_bench=1 ;;
    --quick) quick=1 ;;
    --bundle) bundle=$2; shift ;;
    *) echo "usage: OUT=DIR $0 [--skip-build] [--model-bench] [--quick] [--bundle DIR]" >&2; exit 2 ;;
  esac
  shift
done
mkdir -p "$OUT"
export AUTOGLM_SOURCE_DIR=$SRC
# Binary paths (a build folder, or a bundle's bin/ with its lib/ first on the library path).
TEST_CUDA=$BUILD_DIR/tests/cuda/test_cuda
TEST_KERNELS=$BUILD_DIR/tests/kernels/test_kernels
CUDA_PERF=$BUILD_DIR/tests/cuda/cuda_perf
AUTOGLM=$BUILD_DIR/tools/autoglm
TEST_WHISPER=$BUILD_DIR/tests/model/test_whisper_model
if [ -n "$bundle" ]; then
  bundle=$(cd "$bundle" && pwd)
  skip_build=1
  TEST_CUDA=$bundle/bin/test_cuda TEST_KERNELS=$bundle/bin/test_kernels
  CUDA_PERF=$bundle/bin/cuda_perf AUTOGLM=$bundle/bin/autoglm TEST_WHISPER=$bundle/bin/test_whisper_model
  # Its lib/ and the CUDA libraries on the library path; its compiled-in source folder pointed at this checkout.
  use_cuda_bundle "$bundle" "$SRC"
  BUILD_DIR=$bundle
fi
summary_steps=()
overall=0

# run_step NAME TIMEOUT_S COMMAND...: runs COMMAND with its output in $OUT/NAME.log, records status and time.
run_step() {
  local name=$1 limit=$2
  shift 2
  local t0=$SECONDS
  echo "== $name: $*" | tee "$OUT/$name.log"
  timeout "$limit" "$@" >>"$OUT/$name.log" 2>&1
  local rc=$?
  local secs=$((SECONDS - t0))
  local status=pass
  if [ $rc -ne 0 ]; then status=fail; overall=1; fi
  [ $rc -eq 124 ] && status=timeout
  echo "== $name: $status (rc $rc, ${secs}s)" | tee -a "$OUT/$name.log"
  summary_steps+=("\"$name\": {\"status\": \"$status\", \"rc\": $rc, \"seconds\": $secs}")
  return $rc
}

# A gtest step must not skip anything on the GPU machine (skips mean the device was not seen), except tests named
# multi_gpu_* on a machine with one GPU (tensor parallelism over several GPUs: they say how many they need).
no_skips() {
  local log=$1 allowed='^$'
  local n_gpus
  n_gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
  [ "${n_gpus:-0}" -lt 2 ] && allowed='\.multi_gpu_'
  # Test lines only ("[  SKIPPED ] suite.name"), not gtest's "[  SKIPPED ] 2 tests, listed below:" summary.
  local skipped='^\[  SKIPPED \] [A-Za-z0-9_/]+\.[A-Za-z0-9_/]+'
  if grep -E "$skipped" "$log" | grep -v -- "$allowed" | grep -q .; then
    echo "tests were skipped on the GPU machine:" >&2
    grep -E "$skipped" "$log" | grep -v -- "$allowed" >&2
    return 1
  fi
}

{
  echo "date: $(date -u +%FT%TZ)"
  echo "commit: $(git rev-parse HEAD 2>/dev/null) $(git status --porcelain 2>/dev/null | wc -l) uncommitted paths"
  command -v nvidia-smi >/dev/null && nvidia-smi
  for nvcc in nvcc /usr/local/cuda/bin/nvcc; do command -v $nvcc >/dev/null && { $nvcc --version; break; }; done
  cmake --version | head -1
  nproc
} >"$OUT/machine.txt" 2>&1

if [ $skip_build -eq 0 ]; then
  arch_flag=()
  [ -n "$CUDA_ARCHS" ] && arch_flag=(-DCMAKE_CUDA_ARCHITECTURES="$CUDA_ARCHS")
  run_step configure 600 cmake -S "$SRC" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DAUTOGLM_CUDA=ON "${arch_flag[@]}"
  if ! grep -q "autoglm: CUDA backend on" "$OUT/configure.log"; then
    echo "configure did not enable the CUDA backend (see configure.log)" | tee -a "$OUT/configure.log"
    overall=1
  fi
  run_step build 1500 cmake --build "$BUILD_DIR" -j "$JOBS" --target test_cuda test_kernels cuda_perf nccl_perf autoglm test_whisper_model
fi

# How far transformers itself moves from the fp32 fixtures in bf16: the scale of the bound test_cuda holds the
# deployment precision to (tests/fixtures/hf_bf16_error.py).
if [ "${SKIP_HF:-0}" != 1 ] && python3 -c 'import transformers' 2>/dev/null; then
  run_step hf_bf16_error $STEP_LIMIT python3 "$SRC/tests/fixtures/hf_bf16_error.py" "$OUT/hf_bf16_error.json"
fi

# `autoglm logits --device cuda:0` against the CPU backend on the tiny checkpoint (an independent check).
logits_check() {
  local tokens=1458,1460,1462,198,56,1119,647,279  # the fixture's chat case
  "$AUTOGLM" logits -m "$SRC/tests/fixtures/tiny_glm4v" --tokens $tokens --device cuda:0 >"$OUT/logits_cuda.json" &&
    "$AUTOGLM" logits -m "$SRC/tests/fixtures/tiny_glm4v" --tokens $tokens >"$OUT/logits_cpu.json" &&
    python3 - "$OUT/logits_cpu.json" "$OUT/logits_cuda.json" <<'PY'
import json, sys
a, b = (json.load(open(f)) for f in sys.argv[1:3])
la, lb = a["logits_last"], b["logits_last"]
err = max(abs(x - y) for x, y in zip(la, lb)) / max(abs(x) for x in la)
print("argmax cpu", a["argmax"], "cuda", b["argmax"], "max|diff|/max|cpu|", err)
sys.exit(0 if a["argmax"] == b["argmax"] and err < 2e-2 else 1)
PY
}
export AUTOGLM SRC OUT
run_step logits_cli $STEP_LIMIT bash -c "$(declare -f logits_check); logits_check"

run_step test_cuda $STEP_LIMIT "$TEST_CUDA" --gtest_output=json:"$OUT/test_cuda.json"
no_skips "$OUT/test_cuda.log" || { overall=1; summary_steps+=("\"test_cuda_no_skips\": {\"status\": \"fail\"}"); }

run_step harness_cuda $STEP_LIMIT "$TEST_KERNELS" --gtest_filter='*cuda*' \
  --gtest_output=json:"$OUT/test_kernels_cuda.json"
# (The harness skips the (op, dtype) pairs CUDA does not implement yet: quantized weights, a Q8_0 cache.) No group
# at all means the harness did not see cuda:0.
harness_ok=$(grep -c '^\[       OK \]' "$OUT/harness_cuda.log")
echo "harness cuda groups passed: $harness_ok" >>"$OUT/harness_cuda.log"
if [ "$harness_ok" -eq 0 ]; then
  overall=1
  summary_steps+=("\"harness_cuda_ran\": {\"status\": \"fail\"}")
fi

# Whisper (issue 12) on cuda:0 against the transformers fixtures (split GEMM precision; skips while
# tests/fixtures/whisper/ref.json is absent).
if [ -x "$TEST_WHISPER" ]; then
  run_step whisper_cuda $STEP_LIMIT env AUTOGLM_TEST_DEVICE=cuda:0 "$TEST_WHISPER" --gtest_output=json:"$OUT/whisper_cuda.json"
fi

perf_args=(--out "$OUT/perf.json")
[ $quick -eq 1 ] && perf_args+=(--quick --min-time 0.05)
run_step perf $STEP_LIMIT "$CUDA_PERF" "${perf_args[@]}"
# Tensor parallelism's all-reduce through NCCL (a group of one here; 2/4/8 GPUs in scripts/tp_check.sh).
NCCL_PERF=$(dirname "$CUDA_PERF")/nccl_perf
[ -x "$NCCL_PERF" ] && run_step nccl_perf $STEP_LIMIT "$NCCL_PERF" --reps 50 --out "$OUT/nccl_perf.json"
harness_perf_time=0.2
[ $quick -eq 1 ] && harness_perf_time=0.05
# (SKIP_HARNESS_PERF=1 leaves out the harness perf pass: minutes over every case; SKIP_HF=1 leaves out the
# transformers steps; HF_STATIC_LIMIT gives the static-cache peer (torch.compile first) its own time limit.)
if [ "${SKIP_HARNESS_PERF:-0}" != 1 ]; then
run_step harness_perf $STEP_LIMIT "$TEST_KERNELS" --perf --backend cuda:0 --no-pool \
  --min-time "$harness_perf_time"
fi

if [ $model_bench -eq 1 ]; then
  model_dir=${MODEL_DIR:-$BUILD_DIR/random-9b}
  if [ ! -f "$model_dir/config.json" ]; then
    run_step random_model $STEP_LIMIT "$AUTOGLM" random-model -o "$model_dir"
  fi
  run_step model_bench $STEP_LIMIT "$AUTOGLM" bench -m "$model_dir" --device cuda:0 --kv-type bf16 \
    --contexts 512,2048 --decode-tokens 32 --recompute-reps 0 -o "$OUT/model_bench.json"
  # The same decode without CUDA graphs (runtime/step_graphs): what one launch per step saves; and without
  # programmatic dependent launches (sm_90: each kernel's prologue, e.g. a GEMV's first weight loads, starts while
  # the kernel before it finishes). SKIP_BENCH_VARIANTS=1 leaves both out (scripts/cuda_variants.sh compares
  # other switches).
  if [ -z "${SKIP_BENCH_VARIANTS:-}" ]; then
    run_step model_bench_no_graphs $STEP_LIMIT env AUTOGLM_CUDA_GRAPHS=0 "$AUTOGLM" bench -m "$model_dir" \
      --device cuda:0 --kv-type bf16 --contexts 512,2048 --decode-tokens 32 --recompute-reps 0 \
      -o "$OUT/model_bench_no_graphs.json"
    run_step model_bench_no_pdl $STEP_LIMIT env AUTOGLM_CUDA_PDL=0 "$AUTOGLM" bench -m "$model_dir" \
      --device cuda:0 --kv-type bf16 --contexts 512,2048 --decode-tokens 32 --recompute-reps 0 \
      -o "$OUT/model_bench_no_pdl.json"
  fi
  run_step vision_bench $STEP_LIMIT "$AUTOGLM" bench-vision -m "$model_dir" --device cuda:0 \
    --sizes 336x336,1080x2400 --reps 3 -o "$OUT/vision_bench.json"
  run_step agent_bench $STEP_LIMIT "$AUTOGLM" bench-agent -m "$model_dir" --device cuda:0 --kv-type bf16 \
    --reps 3 -o "$OUT/agent_bench.json"
  # Speech in (issue 12): random-weight whisper-small and large-v3-turbo (real dimensions, BF16, HF layout), the
  # 30 s window's components (encode, decode ms per token, real-time factor) and transcribe() of 30 / 60 s.
  asr_bench() {
    for size in small large-v3-turbo; do
      local dir="$BUILD_DIR/random-whisper-$size"
      [ -f "$dir/model.safetensors" ] ||
        "$AUTOGLM" random-whisper --size "$size" -o "$dir" --layout "$SRC/tests/fixtures/whisper" || return 1
      "$AUTOGLM" bench-asr -m "$dir" --device cuda:0 --reps 5 --audio 30,60 -o "$OUT/asr_bench_$size.json" ||
        return 1
    done
  }
  export BUILD_DIR
  if [ -z "${SKIP_ASR:-}" ]; then run_step asr_bench $STEP_LIMIT bash -c "$(declare -f asr_bench); asr_bench"; fi
  # The peer in the same run: transformers on the same checkpoint (bench/peer/hf_cuda.py), where python3 has it:
  # eager (dynamic cache), then the static cache (its first generate compiles and is not timed).
  # HF_STATIC_ONLY=1 skips the eager run (minutes at 9B dims); the vision tower is timed on its own (--vision-only).
  if [ "${SKIP_HF:-0}" != 1 ] && python3 -c 'import transformers' 2>/dev/null; then
    if [ "${HF_STATIC_ONLY:-0}" != 1 ]; then
      run_step hf_peer $STEP_LIMIT python3 "$SRC/bench/peer/hf_cuda.py" "$model_dir" "$OUT/hf_peer.json" \
        --contexts 512,2048 --decode 32
    fi
    run_step hf_peer_static ${HF_STATIC_LIMIT:-$STEP_LIMIT} python3 "$SRC/bench/peer/hf_cuda.py" "$model_dir" \
      "$OUT/hf_peer_static.json" --contexts 512,2048 --decode 32 --static --skip-eager
    run_step hf_vision $STEP_LIMIT python3 "$SRC/bench/peer/hf_cuda.py" "$model_dir" "$OUT/hf_vision.json" \
      --vision-only
  fi
fi

{
  echo "{"
  echo "  \"commit\": \"$(git rev-parse HEAD 2>/dev/null)\","
  echo "  \"steps\": {"
  for i in "${!summary_steps[@]}"; do
    sep=","
    [ "$i" -eq $((${#summary_steps[@]} - 1)) ] && sep=""
    echo "    ${summary_steps[$i]}$sep"
  done
  echo "  },"
  if [ -s "$OUT/perf.json" ]; then echo "  \"perf\": $(cat "$OUT/perf.json"),"; fi
  echo "  \"passed\": $([ $overall -eq 0 ] && echo true || echo false)"
  echo "}"
} >"$OUT/summary.json"
echo "results in $OUT (summary.json); overall: $([ $overall -eq 0 ] && echo PASS || echo FAIL)"
# The figures and the failing tests in a few lines, so a device call's output tail has them.
python3 "$SRC/scripts/cuda_headline.py" "$OUT" || true
# PACK=1: everything under $OUT in one file, $OUT/results.tgz (a device call brings back a limited number of files).
if [ "${PACK:-0}" = 1 ]; then
  tar czf "$OUT.tgz" -C "$(dirname "$OUT")" "$(basename "$OUT")" && rm -rf "$OUT" && mkdir -p "$OUT" &&
    mv "$OUT.tgz" "$OUT/results.tgz" && echo "packed: $OUT/results.tgz"
fi
exit $overall
