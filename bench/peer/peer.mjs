#!/usr/bin/env node
// bench/peer/peer.mjs: autoglm against llama.cpp (node-llama-cpp 3.21.1's prebuilt CPU build) on the same GGUF
// files, with the machine's STREAM triad measured in the same run, and the vision encoder before/after. Issue 11.
//
// For each configuration (text dimensions x weight type) it writes a random-weight checkpoint in the real Hugging
// Face layout (`autoglm random-model`), converts it to llama.cpp's GGUF (`autoglm quantize`, the vocabulary
// borrowed from models/demo), and runs one process per repetition, interleaved autoglm, llama.cpp, autoglm, ...:
// the same file (autoglm's model directory holds a hard link to it, with config.json minus vision_config: text
// only, like llama.cpp's text GGUF), the same threads, the same 512 prompt tokens, the same decode length, the
// same 4096-position f16 KV cache. Reported per engine: medians with min/max of prefill tokens/s, decode tokens/s,
// decode GB/s (bytes of the GGUF's tensors read per token, i.e. all but token_embd, over the decode time) against
// a triad run just before that process (the machine's bandwidth moves; see measured()), peak RSS (VmHWM), process start to ready, and start to first token. The page cache is warmed with
// the file before each configuration (both engines mmap it; a cold disk is not what is compared).
//
//   node bench/peer/peer.mjs --build build/bench [--threads 2] [--reps 3] [--configs 1.5b:q4_0,9b:q4_k]
//        [--vision-before /work/bench-before/build/tools/autoglm] [--out bench/results/peer_DATE]
// Writes OUT.json and OUT.md (see bench/peer/README.md).
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, linkSync, mkdirSync, openSync, readSync, closeSync, readFileSync, rmSync, statSync,
  writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { renderMarkdown } from './report.mjs';

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
const today = new Date().toISOString().slice(0, 10);
const args = {
  build: path.join(ROOT, 'build/bench'), work: '', threads: 2, reps: 3, prompt: 512, decode: 32, ctx: 4096,
  configs: '1.5b:bf16,1.5b:q8_0,1.5b:q4_0,1.5b:q4_k,9b-l8:bf16,9b-l8:q8_0,9b:q4_0,9b:q4_k',
  visionBefore: '', visionReps: 3, visionSizes: '336x336:3,1080x2400:1', triadMib: 512, pruneHf: false, prepareOnly: false,
  out: path.join(ROOT, `bench/results/peer_${today}`), note: '',
};
for (let i = 2; i < process.argv.length; ++i) {
  const k = process.argv[i].replace(/^--/, '').replace(/-([a-z])/g, (_, c) => c.toUpperCase());
  if (!(k in args)) throw new Error(`unknown option ${process.argv[i]}`);
  if (typeof args[k] === 'boolean') args[k] = true;
  else args[k] = typeof args[k] === 'number' ? Number(process.argv[++i]) : process.argv[++i];
}
args.build = path.resolve(args.build);
const WORK = path.resolve(args.work || path.join(args.build, 'peer_models'));
const BIN = path.join(args.build, 'tools/autoglm');
const PEER_AUTOGLM = path.join(args.build, 'bench/peer/autoglm_peer_autoglm');
const TRIAD = path.join(args.build, 'bench/peer/autoglm_peer_triad');
const PEER_LLAMA = path.join(ROOT, 'bench/peer/peer_llama.mjs');
const DEMO = path.join(ROOT, 'models/demo');
for (const f of [BIN, PEER_AUTOGLM, TRIAD])
  if (!existsSync(f)) throw new Error(`${f} is missing: cmake --build ${args.build} --target autoglm autoglm_peer_autoglm autoglm_peer_triad`);

// Text dimensions. 9b is GLM-4.1V-9B's decoder; 9b-l8 the same with 8 of its 40 layers (BF16/Q8_0 of all 40 do
// not fit this machine's time and memory twice over); 1.5b a 1.5B-class decoder (hidden 2048, 16 layers, ffn 6848).
// Vision depth 1: the text benchmark never loads the tower (autoglm's config drops vision_config).
const DIMS = {
  '1.5b': { layers: 16, hidden: 2048, heads: 16, kvHeads: 2, intermediate: 6848 },
  '9b-l8': { layers: 8, hidden: 4096, heads: 32, kvHeads: 2, intermediate: 13696 },
  '9b': { layers: 40, hidden: 4096, heads: 32, kvHeads: 2, intermediate: 13696 },
  // Seconds per run: for trying the script itself (not a benchmark).
  dev: { layers: 2, hidden: 2048, heads: 16, kvHeads: 2, intermediate: 6848, vocab: 4096 },
};

const log = (...a) => console.error(`[${new Date().toISOString().slice(11, 19)}]`, ...a);

function run(cmd, argv, { json = true } = {}) {
  const loadavg = readFileSync('/proc/loadavg', 'utf8').trim();
  const spawnUnixMs = performance.timeOrigin + performance.now();
  const r = spawnSync(cmd, argv, { encoding: 'utf8', maxBuffer: 256 << 20 });
  if (r.status !== 0) throw new Error(`${cmd} ${argv.join(' ')} failed (${r.status ?? r.signal}): ${r.stderr}`);
  if (!json) return r.stdout;
  const lines = r.stdout.trim().split('\n');
  const out = JSON.parse(lines[lines.length - 1].startsWith('{') ? lines[lines.length - 1] : r.stdout);
  out.spawn_unix_ms = spawnUnixMs;
  out.loadavg_before = loadavg;  // 1/5/15-minute load of the machine when the run started
  return out;
}

function hfDir(dimsKey) {
  const d = DIMS[dimsKey];
  const dir = path.join(WORK, `${dimsKey}-hf`);
  if (!existsSync(path.join(dir, 'model.safetensors.index.json'))) {
    log(`writing random-weight checkpoint ${dir}`);
    run(BIN, ['random-model', '-o', dir, '--layers', String(d.layers), '--vision-depth', '1', '--hidden', String(d.hidden),
      '--heads', String(d.heads), '--kv-heads', String(d.kvHeads), '--intermediate', String(d.intermediate),
      ...(d.vocab ? ['--vocab', String(d.vocab)] : [])], { json: false });
  }
  return dir;
}

// The GGUF file of one configuration and autoglm's model directory around a hard link to it.
function prepare(dimsKey, type) {
  const gguf = path.join(WORK, `${dimsKey}-${type}.gguf`);
  if (!existsSync(gguf)) {
    const hf = hfDir(dimsKey);
    log(`quantize ${dimsKey} -> ${type}`);
    run(BIN, ['quantize', '-m', hf, '-o', gguf + '.tmp', '--type', type, '--tokenizer', DEMO, '-q'], { json: false });
    run('mv', [gguf + '.tmp', gguf], { json: false });
  }
  const dir = path.join(WORK, `${dimsKey}-${type}.autoglm`);
  if (!existsSync(path.join(dir, 'model.gguf'))) {
    mkdirSync(dir, { recursive: true });
    const cfg = JSON.parse(readFileSync(path.join(hfDir(dimsKey), 'config.json'), 'utf8'));
    delete cfg.vision_config;  // text only: llama.cpp's text GGUF has no tower either
    writeFileSync(path.join(dir, 'config.json'), JSON.stringify(cfg, null, 1));
    copyFileSync(path.join(hfDir(dimsKey), 'generation_config.json'), path.join(dir, 'generation_config.json'));
    for (const f of ['tokenizer.json', 'tokenizer_config.json', 'chat_template.jinja'])
      copyFileSync(path.join(DEMO, f), path.join(dir, f));
    linkSync(gguf, path.join(dir, 'model.gguf'));
  }
  return { gguf, dir };
}

// Bytes decode reads per token from the file: every tensor but the embedding table (one row of it is read).
async function bytesPerToken(gguf) {
  const { readGgufFileInfo } = await import(
    pathToFileURL(path.join(ROOT, 'tests/npm/node_modules/node-llama-cpp/dist/index.js')).href);
  const info = await readGgufFileInfo(gguf);
  const t = [...info.tensorInfo].sort((a, b) => a.fileOffset - b.fileOffset);
  const size = statSync(gguf).size;
  let total = 0;
  for (let i = 0; i < t.length; ++i) {
    const bytes = (i + 1 < t.length ? t[i + 1].fileOffset : size) - t[i].fileOffset;
    if (t[i].name !== 'token_embd.weight') total += bytes;
  }
  return total;
}

function warmPageCache(file) {
  const fd = openSync(file, 'r');
  const buf = Buffer.allocUnsafe(16 << 20);
  while (readSync(fd, buf, 0, buf.length, null) > 0);
  closeSync(fd);
}

function promptFile() {
  // Token ids of the demo vocabulary (10..1409), fixed seed: both engines read this file.
  const file = path.join(WORK, `prompt${args.prompt}.txt`);
  let s = 1;
  const ids = [];
  for (let i = 0; i < args.prompt; ++i) {
    s = (s * 1103515245 + 12345) % 2147483648;
    ids.push(10 + (s % 1400));
  }
  writeFileSync(file, ids.join(','));
  return file;
}

const stat = (xs) => {
  const v = xs.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return null;
  const median = v.length % 2 ? v[v.length >> 1] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
  return { median, min: v[0], max: v[v.length - 1], n: v.length };
};

function summarize(runs, bytes) {
  return {
    prefill_tokens_per_s: stat(runs.map((r) => r.prefill_tokens_per_s)),
    decode_tokens_per_s: stat(runs.map((r) => r.decode_tokens_per_s)),
    decode_ms_median: stat(runs.map((r) => r.decode_ms_median)),
    decode_GBps: stat(runs.map((r) => bytes * r.decode_tokens_per_s / 1e9)),
    triad_GBps: stat(runs.map((r) => r.triad_GBps)),
    decode_pct_of_triad: stat(runs.map((r) => 100 * bytes * r.decode_tokens_per_s / 1e9 / r.triad_GBps)),
    decode_pct_of_read: stat(runs.map((r) => 100 * bytes * r.decode_tokens_per_s / 1e9 / r.read_GBps)),
    peak_rss_GB: stat(runs.map((r) => r.memory_at_end.VmHWM_kB * 1024 / 1e9)),
    rss_file_at_end_GB: stat(runs.map((r) => r.memory_at_end.RssFile_kB * 1024 / 1e9)),
    rss_anon_at_end_GB: stat(runs.map((r) => r.memory_at_end.RssAnon_kB * 1024 / 1e9)),
    start_to_ready_s: stat(runs.map((r) => (r.ready_unix_ms - r.spawn_unix_ms) / 1e3)),
    model_load_s: stat(runs.map((r) => r.model_load_ms / 1e3)),
    start_to_first_token_s: stat(runs.map((r) => (r.ready_unix_ms - r.spawn_unix_ms + r.prefill_ms) / 1e3)),
  };
}

function triad(reps = 10, quiet = false) {
  const t = run(TRIAD, ['--threads', String(args.threads), '--mib-per-array', String(args.triadMib), '--reps', String(reps)]);
  if (!quiet) log(`triad ${t.triad_GBps_best.toFixed(2)} GB/s (read ${t.read_GBps_best.toFixed(2)} GB/s)`);
  return t;
}

// One engine run with a short triad just before it: this VM's memory bandwidth moves with its neighbours (2-core
// triads from 24 to 62 GB/s within an hour), so each run's decode GB/s is set against the bandwidth of its moment.
function measured(cmd, argv) {
  const t = triad(5, true);
  const out = run(cmd, argv);
  out.triad_GBps = t.triad_GBps_best;
  out.read_GBps = t.read_GBps_best;
  return out;
}

function otherLoad() {
  // Anything else busy on the machine while we measure (the report says so rather than hiding it).
  const r = spawnSync('ps', ['-eo', 'pid,pcpu,etimes,comm', '--sort=-pcpu'], { encoding: 'utf8' });
  return r.stdout.split('\n').slice(1).map((l) => l.trim().split(/\s+/))
    .filter((f) => f.length >= 4 && Number(f[0]) !== process.pid && Number(f[1]) >= 1).slice(0, 5)
    .map((f) => `${f[3]} ${f[1]}% for ${f[2]} s`);
}

mkdirSync(WORK, { recursive: true });
const configs = args.configs ? args.configs.split(',').map((c) => { const [dims, type] = c.split(':'); return { dims, type }; }) : [];
for (const c of configs) if (!DIMS[c.dims]) throw new Error(`unknown dimensions '${c.dims}' (${Object.keys(DIMS).join(', ')})`);
const prompt = promptFile();

// Prepare every file first (quantizing is the slow part and must not sit between measurements).
for (const c of configs) Object.assign(c, prepare(c.dims, c.type));
if (args.pruneHf) for (const k of new Set(configs.map((c) => c.dims))) rmSync(path.join(WORK, `${k}-hf`), { recursive: true, force: true });
let visionDir = '';
if (args.visionBefore) {
  visionDir = path.join(WORK, 'vision-9b-hf');
  if (!existsSync(path.join(visionDir, 'model.safetensors.index.json'))) {
    log('writing the vision checkpoint (9B tower: 24 blocks; 1 text layer, small vocabulary)');
    run(BIN, ['random-model', '-o', visionDir, '--layers', '1', '--vision-depth', '24', '--vocab', '4096'], { json: false });
  }
}
if (args.prepareOnly) process.exit(0);

const report = {
  benchmark: 'peer_llama_cpp',
  date: new Date().toISOString(),
  machine: { cpus: os.cpus().length, cpu: os.cpus()[0]?.model, mem_GB: os.totalmem() / 1e9, node: process.version },
  commit: spawnSync('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).stdout.trim(),
  settings: { threads: args.threads, reps: args.reps, prompt_tokens: args.prompt, decode_tokens: args.decode, ctx: args.ctx,
    kv_type: 'f16', batch: 512, order: 'interleaved: autoglm, llama.cpp, autoglm, llama.cpp, ... (one process each)',
    page_cache: 'warm (file read once before each configuration)', dims: DIMS },
  note: args.note,
  other_load_at_start: otherLoad(),
  peer_baseline: run('node', [PEER_LLAMA, '-', '--baseline', '--threads', String(args.threads)]),
  triads: [],
  configs: [],
  vision: null,
};
report.triads.push(triad());

for (const c of configs) {
  log(`=== ${c.dims} ${c.type}: ${c.gguf}`);
  warmPageCache(c.gguf);
  const bytes = await bytesPerToken(c.gguf);
  const runs = { autoglm: [], llama: [] };
  for (let r = 0; r < args.reps; ++r) {
    const common = ['--tokens-file', prompt, '--decode', String(args.decode), '--threads', String(args.threads), '--ctx', String(args.ctx)];
    const a = measured(PEER_AUTOGLM, [c.dir, ...common, '--kv-type', 'f16']);
    log(`  autoglm   prefill ${a.prefill_tokens_per_s.toFixed(1)} tok/s, decode ${a.decode_tokens_per_s.toFixed(2)} tok/s, peak ${(a.memory_at_end.VmHWM_kB / 1e6).toFixed(2)} GB, triad ${a.triad_GBps.toFixed(1)} GB/s`);
    runs.autoglm.push(a);
    const l = measured('node', [PEER_LLAMA, c.gguf, ...common]);
    log(`  llama.cpp prefill ${l.prefill_tokens_per_s.toFixed(1)} tok/s, decode ${l.decode_tokens_per_s.toFixed(2)} tok/s, peak ${(l.memory_at_end.VmHWM_kB / 1e6).toFixed(2)} GB, triad ${l.triad_GBps.toFixed(1)} GB/s`);
    runs.llama.push(l);
  }
  report.triads.push(triad());
  report.configs.push({ dims: c.dims, type: c.type, gguf: path.relative(ROOT, c.gguf), gguf_bytes: statSync(c.gguf).size,
    bytes_read_per_token: bytes, autoglm_weight_bytes_per_token: runs.autoglm[0].weight_bytes_per_token,
    autoglm: summarize(runs.autoglm, bytes), llama_cpp: summarize(runs.llama, bytes), runs });
  writeFileSync(args.out + '.json', JSON.stringify(report, null, 1));  // partial results survive a later failure
}

if (visionDir) {
  // Before (the binary given) and after (this build), interleaved per repetition, one process per encode, the same
  // checkpoint, threads and image sizes. --vision-sizes WxH[:REPS],... (REPS defaults to --vision-reps).
  const sizes = args.visionSizes.split(',').map((x) => { const [size, reps] = x.split(':'); return { size, reps: Number(reps || args.visionReps) }; });
  const v = { model: 'random 9B vision tower (24 blocks, hidden 1536)', before_bin: args.visionBefore, sizes, summary: [] };
  for (const { size, reps } of sizes) {
    const enc = { before: [], after: [] };
    let tokens = 0;
    for (let r = 0; r < reps; ++r)
      for (const [key, bin] of [['before', args.visionBefore], ['after', BIN]]) {
        const loadavg = readFileSync('/proc/loadavg', 'utf8').trim();
        const out = run(bin, ['bench-vision', '-m', visionDir, '--sizes', size, '--threads', String(args.threads), '--reps', '1']);
        const x = out.results[0];
        tokens = x.tokens;
        log(`  vision ${key} ${size}: ${(x.encode_ms / 1e3).toFixed(2)} s (${x.tokens} tokens)`);
        enc[key].push({ ...x, loadavg_before: loadavg });
      }
    const b = stat(enc.before.map((x) => x.encode_ms)), a = stat(enc.after.map((x) => x.encode_ms));
    v.summary.push({ size, tokens, before_ms: b, after_ms: a, speedup: b.median / a.median, runs: enc });
    report.vision = v;
    writeFileSync(args.out + '.json', JSON.stringify(report, null, 1));
  }
}
report.triads.push(triad());
report.triad_GBps = stat(report.triads.map((t) => t.triad_GBps_best));
report.other_load_at_end = otherLoad();
writeFileSync(args.out + '.json', JSON.stringify(report, null, 1));
writeFileSync(args.out + '.md', renderMarkdown(report));
log(`wrote ${args.out}.json and ${args.out}.md`);
