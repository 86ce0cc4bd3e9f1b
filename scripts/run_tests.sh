#!/usr/bin/env bash
# Runs every test: the C++ unit/parity tests through ctest, then the npm-driven tests (real clients and
# reference implementations) under node's test runner, then a short run of the fuzz targets (tests/fuzz), then
# the parser/loader unit tests under ASan + UBSan (tests/sanitize), then the aarch64 cross build under qemu
# (tests/arm).
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${1:-build/release}
export AUTOGLM_BIN="$PWD/$BUILD_DIR/tools/autoglm"
export AUTOGLM_SOURCE_DIR="$PWD"

status=0
(cd "$BUILD_DIR" && ctest --output-on-failure -j "$(nproc)" --timeout 900) || status=1

shopt -s nullglob
npm_tests=(tests/npm/*.test.mjs)
if ((${#npm_tests[@]})); then
  node --test --test-concurrency=1 "${npm_tests[@]}" || status=1
fi

# Fuzz targets (clang build in build/fuzz): every committed crash input, then a few seconds of each target
# from its seed corpus. Skips with a message when clang/libFuzzer is missing.
bash tests/fuzz/run_fuzz.sh --check || status=1

# The parser and loader unit tests rebuilt under ASan + UBSan in the same clang build (tests/sanitize names the
# subset). Skips with a message when clang's sanitizer runtimes are missing.
bash tests/sanitize/run_sanitized_tests.sh || status=1

# aarch64: cross-built kernel harness, core/ops and tiny-model parity tests under qemu-aarch64 (-cpu max, then the
# kernel tests as an ARMv8.0 Cortex-A53). Skips with a message when the cross compiler or qemu is missing.
bash tests/arm/run_arm_tests.sh || status=1
exit $status
