#!/usr/bin/env node
// bench/peer/peer_llama.mjs: llama.cpp's side of the peer benchmark, through node-llama-cpp 3.21.1 (its prebuilt
// CPU build: the llama.cpp users of the npm package run). One process per repetition, the counterpart of
// peer_autoglm.cpp: load the GGUF (mmap), make a context of --ctx positions with --threads threads and a 512-token
// batch, evaluate the prompt once, then generate --decode tokens greedily at batch 1 (end-of-generation tokens do
// not stop it). Prints one JSON object with the same fields as peer_autoglm (times in ms, /proc/self/status kB).
// The node runtime itself is part of this process: peer.mjs measures a bare node + node-llama-cpp process to say
// how much of the resident memory that is.
//
//   node bench/peer/peer_llama.mjs GGUF --tokens-file F --decode N [--threads T] [--ctx C] [--baseline]
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
const args = { file: process.argv[2], tokensFile: '', decode: 32, threads: 2, ctx: 4096, baseline: false };
for (let i = 3; i < process.argv.length; ++i) {
  const k = process.argv[i].replace(/^--/, '').replace(/-([a-z])/g, (_, c) => c.toUpperCase());
  if (!(k in args)) throw new Error(`unknown option ${process.argv[i]}`);
  if (typeof args[k] === 'boolean') args[k] = true;
  else args[k] = typeof args[k] === 'number' ? Number(process.argv[++i]) : process.argv[++i];
}

function memoryStatus() {
  const out = {};
  for (const line of readFileSync('/proc/self/status', 'utf8').split('\n')) {
    const m = /^(VmHWM|VmRSS|RssAnon|RssFile):\s+(\d+)/.exec(line);
    if (m) out[`${m[1]}_kB`] = Number(m[2]);
  }
  return out;
}

const nowUnixMs = () => performance.timeOrigin + performance.now();
const { getLlama, LlamaLogLevel } = await import(
  pathToFileURL(path.join(ROOT, 'tests/npm/node_modules/node-llama-cpp/dist/index.js')).href);
const llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error, maxThreads: args.threads });

if (args.baseline) {
  // The runtime and the library with no model: what a node process costs before llama.cpp holds anything.
  console.log(JSON.stringify({ engine: 'node-llama-cpp baseline', ready_unix_ms: nowUnixMs(), memory_at_end: memoryStatus() }));
  await llama.dispose();
  process.exit(0);
}

const prompt = readFileSync(args.tokensFile, 'utf8').split(',').filter((s) => s.trim() !== '').map(Number);
const t0 = performance.now();
const model = await llama.loadModel({ modelPath: args.file, useMmap: true, gpuLayers: 0 });
const context = await model.createContext({
  contextSize: args.ctx, batchSize: 512, threads: { ideal: args.threads, min: args.threads },
});
const sequence = context.getSequence();
const modelLoadMs = performance.now() - t0;
const readyUnixMs = nowUnixMs();
const memReady = memoryStatus();

const times = [];
const tStart = performance.now();
for await (const token of sequence.evaluate(prompt, { temperature: 0, yieldEogToken: true })) {
  times.push(performance.now());
  if (times.length >= args.decode + 1) break;
}
if (times.length !== args.decode + 1) throw new Error(`llama.cpp stopped after ${times.length} tokens`);
const steps = times.slice(1).map((t, i) => t - times[i]);
const sorted = [...steps].sort((a, b) => a - b);
const prefillMs = times[0] - tStart;
const out = {
  engine: 'llama.cpp (node-llama-cpp 3.21.1)',
  gguf: args.file,
  threads: context.currentThreads,
  ctx: context.contextSize,
  batch: context.batchSize,
  flash_attention: context.flashAttention,
  kv_type: 'f16',
  ready_unix_ms: readyUnixMs,
  model_load_ms: modelLoadMs,
  prompt_tokens: prompt.length,
  prefill_ms: prefillMs,
  prefill_tokens_per_s: prompt.length * 1000 / prefillMs,
  decode_tokens: steps.length,
  decode_ms_median: sorted[sorted.length >> 1],
  decode_ms_min: sorted[0],
  decode_ms_max: sorted[sorted.length - 1],
  decode_tokens_per_s: steps.length * 1000 / (times[times.length - 1] - times[0]),
  decode_steps_ms: steps,
  memory_at_ready: memReady,
  memory_at_end: memoryStatus(),
};
await context.dispose();
await model.dispose();
await llama.dispose();
console.log(JSON.stringify(out));
