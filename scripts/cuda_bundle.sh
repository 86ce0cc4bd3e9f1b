#!/usr/bin/env bash
# scripts/cuda_bundle.sh: packs the binaries of the CUDA check (scripts/cuda_check.sh) built on this machine, with
# the shared libraries they need that a GPU machine's image may lack (the Debian -dev packages of setup.sh: spdlog,
# fmt, libpng, libjpeg, libwebp, PCRE2, ...), so the check can run where those packages cannot be installed:
#
#   cmake --build build/release --target test_cuda test_kernels cuda_perf nccl_perf autoglm test_whisper_model \
#     [autoglm_kernel_trace]
#   scripts/cuda_bundle.sh [BUILD_DIR] [DEST]          # default build/release -> build/cuda-bundle
#   (on the GPU machine) OUT=... scripts/cuda_check.sh --bundle build/cuda-bundle [--model-bench]
#
# Left out: the C/C++ runtime (glibc, libstdc++, libgcc_s: the GPU machine has newer ones), the driver (libcuda)
# and cuBLAS (hundreds of MB; the GPU machine's CUDA toolkit has it: cuda_check.sh adds its folders to
# LD_LIBRARY_PATH). The tests read their fixtures under the source folder compiled in (AUTOGLM_SOURCE_DIR);
# source_dir.txt records it so cuda_check.sh can link it to the checkout there.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${1:-build/release}
DEST=${2:-build/cuda-bundle}
binaries=(tests/cuda/test_cuda tests/kernels/test_kernels tests/cuda/cuda_perf tests/cuda/nccl_perf tools/autoglm tests/model/test_whisper_model)
# The CUPTI kernel tracer (bench/cuda_trace), when built: into lib/, with libcupti among its dependencies.
tracer=bench/cuda_trace/libautoglm_kernel_trace.so
[ -f "$BUILD_DIR/$tracer" ] || tracer=""

rm -rf "$DEST"
mkdir -p "$DEST/bin" "$DEST/lib"
for b in "${binaries[@]}"; do
  [ -x "$BUILD_DIR/$b" ] || { echo "cuda_bundle: $BUILD_DIR/$b is not built" >&2; exit 1; }
  strip -o "$DEST/bin/$(basename "$b")" "$BUILD_DIR/$b"
done
[ -n "$tracer" ] && strip -o "$DEST/lib/$(basename "$tracer")" "$BUILD_DIR/$tracer"
skip='^(libc|libm|libdl|librt|libpthread|libstdc\+\+|libgcc_s|ld-linux.*|libcuda|libcublas|libcublasLt)\.so'
for b in "${binaries[@]}" $tracer; do
  ldd "$BUILD_DIR/$b" | awk '$2 == "=>" && $3 ~ /^\// {print $3}'
done | sort -u | while read -r lib; do
  name=$(basename "$lib")
  [[ $name =~ $skip ]] && continue
  cp -L "$lib" "$DEST/lib/$name"
done
grep -m1 '^CMAKE_HOME_DIRECTORY' "$BUILD_DIR/CMakeCache.txt" | cut -d= -f2 >"$DEST/source_dir.txt"
git rev-parse HEAD >"$DEST/commit.txt" 2>/dev/null || true
du -sh "$DEST"
ls -la "$DEST/bin" "$DEST/lib"
