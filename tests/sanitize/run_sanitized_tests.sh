#!/usr/bin/env bash
# tests/sanitize/run_sanitized_tests.sh: the ASan+UBSan step of `make test`, on a stated subset.
#
# The subset: the layers that read untrusted bytes, whose unit tests are cheap to rebuild sanitized:
#   test_core            file_io (regular files only, bounded reads), tensor views/strides, the thread pool
#   test_formats         bounded JSON (depth/value limits), safetensors headers, quantizers
#   test_gguf            the GGUF reader/writer incl. every truncation and malformed counts/offsets/shapes
#   test_tokenizer       tokenizer.json loading, BPE encode/decode, bounded encoding of huge prompts
#   test_template        the Jinja engine and its resource limits (nesting, steps, output, recursion)
#   test_media           image probe/decode limits, base64, bicubic resize, GLM-4.1V preprocessing; audio
#                        decode/limits/malformed and mutated files, Whisper log-mel
#   test_server_parsers  request JSON -> validated request (protocol), HTTP/1.1 framing (RFC 9112 6.3, trailers)
# Not in the subset (too costly to rebuild sanitized within CI time on 2 cores: they pull the model, runtime and
# kernel libraries): the kernel harness, model/runtime/chat tests and the server's end-to-end tests; the fuzz
# targets cover the same parsers with the same sanitizers, and `make asan` runs the whole suite sanitized.
#
# Built in build/fuzz (the fuzz preset: clang, every library compiled with -fsanitize=address,undefined), so the
# libraries are the ones the fuzz step of make test builds anyway. Any sanitizer report fails the test.
# Skips with a message when clang with the sanitizer runtimes is missing.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD_DIR=$ROOT/build/fuzz
targets=(test_core test_formats test_gguf test_tokenizer test_template test_media test_server_parsers)

probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
echo 'int main() { return 0; }' > "$probe/p.cpp"
if ! command -v clang++ >/dev/null 2>&1 ||
   ! clang++ -fsanitize=address,undefined "$probe/p.cpp" -o "$probe/p" >/dev/null 2>&1; then
  echo "sanitize: SKIPPED: clang++ with the ASan/UBSan runtimes is not available (scripts/setup.sh installs clang and libclang-rt-14-dev)"
  exit 0
fi

t0=$SECONDS
cd "$ROOT"
cmake --preset fuzz >/dev/null || { echo "sanitize: FAILED: configure"; exit 1; }
cmake --build "$BUILD_DIR" --target "${targets[@]}" -j "${JOBS:-$(nproc)}" >"$BUILD_DIR/sanitize_build.log" 2>&1 ||
  { tail -40 "$BUILD_DIR/sanitize_build.log"; echo "sanitize: FAILED: build (log: $BUILD_DIR/sanitize_build.log)"; exit 1; }
t_build=$((SECONDS - t0))

export AUTOGLM_SOURCE_DIR=$ROOT
export ASAN_OPTIONS=detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
status=0
summary=()
for t in "${targets[@]}"; do
  exe=$(find "$BUILD_DIR/tests" -type f -name "$t" -perm -u+x | head -1)
  [ -n "$exe" ] || { echo "sanitize: FAILED: $t was not built"; status=1; continue; }
  log=$BUILD_DIR/sanitize_$t.log
  if "$exe" --gtest_brief=1 >"$log" 2>&1 && ! grep -qE "ERROR: (Address|Leak)Sanitizer|runtime error:" "$log"; then
    summary+=("$t ok ($(grep -oE '[0-9]+ tests? from [0-9]+ test suites? ran' "$log" | head -1))")
  else
    status=1
    summary+=("$t FAILED (log: $log)")
    grep -E "FAILED|Sanitizer|runtime error" "$log" | head -20
  fi
done
printf 'sanitize: %s\n' "${summary[@]}"
echo "sanitize: build ${t_build}s, tests $((SECONDS - t0 - t_build))s"
exit $status
