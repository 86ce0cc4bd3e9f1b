#!/usr/bin/env bash
# Runs every test: the C++ unit/parity tests through ctest, then the npm-driven tests (real clients and
# reference implementations) under node's test runner. Prints one summary line at the end.
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
exit $status
