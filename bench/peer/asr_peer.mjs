#!/usr/bin/env node
// bench/peer/asr_peer.mjs: autoglm's Whisper speed beside whisper.cpp's on random-weight models of the released
// dimensions (issue 12, part 6). For each --sizes entry, `autoglm random-whisper --size S --ggml` writes one set of
// random weights twice: a Hugging Face checkpoint (BF16 safetensors, what autoglm loads) and whisper.cpp's own model
// file (F16, what whisper.cpp loads). Then, per repetition and interleaved, one process each:
//   autoglm     `autoglm bench-asr --reps 1 --warmup 1 --audio ''`: encode (+ cross K/V), decode ms per token over
//               positions 0..255, a 256-token prompt (see tools/cmd_bench_asr.cpp)
//   whisper.cpp `whisper-bench -w 0` of a native build (--whisper-bench BIN: whisper.cpp v1.9.3, the version the npm
//               package bundles, built with -march=native), the same measurements (whisper_bench in whisper.cpp)
//   whisper.node the npm package's prebuilt CPU build (bench/peer/asr/whisper_cpp_bench.mjs, context.bench()), for
//               the sizes in --npm-sizes only: that build has no AVX/FMA/F16C code (SSE2 baseline), so it is very
//               slow and says little about whisper.cpp
// Reported per engine: median [min-max] of encode ms, decode ms per token, prompt ms, and the real-time factor of a
// 30 s window with --tokens-per-window text tokens: (encode + (4 + T) x decode per token) / 30 s. autoglm's encode
// column includes the cross K/V (whisper.cpp computes them inside its encode); its log-mel is reported apart
// (whisper.cpp's bench does not time a mel).
//
//   node bench/peer/asr_peer.mjs --autoglm build/release/tools/autoglm --whisper-bench /tmp/whispercpp/build/bin/whisper-bench \
//     [--sizes small,large-v3-turbo] [--threads 2] [--reps 3] [--tokens-per-window 100] [--npm-sizes tiny]
//     [--work DIR] [--out PREFIX]
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
const args = {
  autoglm: path.join(ROOT, 'build/release/tools/autoglm'), whisperBench: '', sizes: 'small,large-v3-turbo',
  threads: 2, reps: 3, tokensPerWindow: 100, npmSizes: '', work: path.join(ROOT, 'build/bench/asr_models'),
  out: path.join(ROOT, 'bench/results/asr_peer'),
};
for (let i = 2; i < process.argv.length; ++i) {
  const k = process.argv[i].replace(/^--/, '').replace(/-([a-z])/g, (_, c) => c.toUpperCase());
  if (!(k in args)) throw new Error(`unknown option ${process.argv[i]}`);
  args[k] = typeof args[k] === 'number' ? Number(process.argv[++i]) : process.argv[++i];
}
const sizes = args.sizes.split(',').filter(Boolean);
const npmSizes = new Set(args.npmSizes.split(',').filter(Boolean));

function run(cmd, argv) {
  const t0 = Date.now();
  const r = spawnSync(cmd, argv, { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`${cmd} ${argv.join(' ')} failed (${r.status}):\n${r.stderr}`);
  process.stderr.write(`  ${path.basename(cmd)} ${argv.slice(0, 2).join(' ')} ... ${((Date.now() - t0) / 1000).toFixed(0)} s\n`);
  return r;
}

function prepare(size) {
  const dir = path.join(args.work, `whisper-${size}`);
  const ggml = path.join(args.work, `ggml-${size}-f16.bin`);
  if (!existsSync(path.join(dir, 'model.safetensors')) || !existsSync(ggml)) {
    mkdirSync(args.work, { recursive: true });
    run(args.autoglm, ['random-whisper', '--size', size, '-o', dir, '--ggml', ggml]);
  }
  return { dir, ggml };
}

function autoglmRep(dir) {
  const r = run(args.autoglm, ['bench-asr', '-m', dir, '--device', 'cpu', '--threads', String(args.threads), '--reps',
    '1', '--warmup', '1', '--audio', '', '--tokens-per-window', String(args.tokensPerWindow)]);
  const c = JSON.parse(r.stdout).components;
  return { encode_ms: c.encode_ms.median + c.cross_kv_ms.median, mel_ms: c.mel_ms.median,
    decode_ms_per_token: c.decode_ms_per_token.median, prompt_ms: c.prompt_ms.median };
}

// whisper-bench prints whisper_print_timings lines: "encode time = X ms / N runs ( Y ms per run)".
function whisperBenchRep(ggml) {
  const r = run(args.whisperBench, ['-m', ggml, '-t', String(args.threads), '-w', '0']);
  const per = (what) => {
    const m = new RegExp(`${what} time =\\s*[\\d.]+ ms /\\s*\\d+ runs \\(\\s*([\\d.]+) ms per run\\)`).exec(r.stderr);
    if (!m) throw new Error(`whisper-bench printed no ${what} time:\n${r.stderr}`);
    return Number(m[1]);
  };
  // Its prompt line counts runs per token (16 calls x 256 tokens): ms per call is 256 x that.
  return { encode_ms: per('encode'), decode_ms_per_token: per('decode'), prompt_ms: per('prompt') * 256,
    system_info: /system_info: (.*)/.exec(r.stderr)?.[1] ?? '' };
}

function npmRep(ggml) {
  const r = run(process.execPath, [path.join(ROOT, 'bench/peer/asr/whisper_cpp_bench.mjs'), ggml, '--threads',
    String(args.threads)]);
  const j = JSON.parse(r.stdout.trim().split('\n').pop());
  return { encode_ms: j.encode_ms, decode_ms_per_token: j.decode_ms_per_token, prompt_ms: j.prompt_ms * 256,
    system_info: j.system_info };
}

const median = (v) => { const s = [...v].sort((a, b) => a - b); const n = s.length; return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2; };
const spread = (v) => ({ median: median(v), min: Math.min(...v), max: Math.max(...v), values: v });
const rtf = (r) => (r.encode_ms + (4 + args.tokensPerWindow) * r.decode_ms_per_token) / 30000;

const result = { date: new Date().toISOString(), threads: args.threads, reps: args.reps,
  tokens_per_window: args.tokensPerWindow, machine: { cpus: spawnSync('nproc').stdout?.toString().trim() }, sizes: {} };
const fmt = (s, d = 0) => `${s.median.toFixed(d)} [${s.min.toFixed(d)}-${s.max.toFixed(d)}]`;

// Written after every repetition, so a long run that is stopped keeps what it measured.
function report(reps) {
  for (const [size, engines] of Object.entries(reps))
    result.sizes[size] = Object.fromEntries(Object.entries(engines).filter(([, rs]) => rs.length).map(([name, rs]) => [name, {
      reps: rs.length, encode_ms: spread(rs.map((r) => r.encode_ms)),
      decode_ms_per_token: spread(rs.map((r) => r.decode_ms_per_token)), prompt_ms: spread(rs.map((r) => r.prompt_ms)),
      rtf: spread(rs.map(rtf)), ...(rs[0].mel_ms !== undefined ? { mel_ms: spread(rs.map((r) => r.mel_ms)) } : {}),
      ...(rs[0].system_info ? { system_info: rs[0].system_info } : {}),
    }]));
  const lines = ['| size | engine | reps | encode ms / 30 s window | decode ms / token | prompt 256 tok ms | RTF (T=' +
    `${args.tokensPerWindow}) |`, '|---|---|---|---|---|---|---|'];
  for (const [size, engines] of Object.entries(result.sizes))
    for (const [name, e] of Object.entries(engines))
      lines.push(`| ${size} | ${name} | ${e.reps} | ${fmt(e.encode_ms)} | ${fmt(e.decode_ms_per_token, 1)} | ` +
        `${fmt(e.prompt_ms)} | ${fmt(e.rtf, 3)} |`);
  writeFileSync(`${args.out}.json`, JSON.stringify(result, null, 1) + '\n');
  writeFileSync(`${args.out}.md`, lines.join('\n') + '\n');
  return lines.join('\n');
}

const all = {};
for (const size of sizes) {
  const { dir, ggml } = prepare(size);
  const engines = { autoglm: autoglmRep };
  if (args.whisperBench) engines['whisper.cpp'] = whisperBenchRep;
  if (npmSizes.has(size)) engines['whisper.node (npm prebuilt)'] = npmRep;
  all[size] = Object.fromEntries(Object.keys(engines).map((e) => [e, []]));
  for (let i = 0; i < args.reps; ++i) {
    for (const [name, fn] of Object.entries(engines)) {
      process.stderr.write(`${size} rep ${i + 1}/${args.reps} ${name}\n`);
      all[size][name].push(fn(name === 'autoglm' ? dir : ggml));
      report(all);
    }
  }
}
console.log(report(all));
