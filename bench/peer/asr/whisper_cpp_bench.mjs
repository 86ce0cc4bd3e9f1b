#!/usr/bin/env node
// bench/peer/asr/whisper_cpp_bench.mjs: whisper.cpp's side of the speech peer benchmark, through
// @fugood/whisper.node 1.1.3 (its prebuilt linux-x64 CPU build, this folder's package.json). One process per
// repetition, the counterpart of `autoglm bench-asr --reps 1`: load the model file (whisper.cpp's own format, written
// by `autoglm random-whisper --ggml`), then context.bench(threads), which is whisper.cpp's whisper_bench: an
// untimed warm-up (encode, a 256-token prompt, one token), then one encode of a 30 s window (empty mel: the mel is
// not timed), 256 single-token decode calls at positions 0..255, 64 calls of 5 tokens and 16 prompts of 256 tokens;
// whisper_get_timings gives ms per call of each. Prints one JSON object.
//
//   node bench/peer/asr/whisper_cpp_bench.mjs MODEL.bin [--threads T] [--flash-attn]
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { initWhisper } = require('@fugood/whisper.node');

const args = { file: process.argv[2], threads: 2, flashAttn: false };
for (let i = 3; i < process.argv.length; ++i) {
  if (process.argv[i] === '--threads') args.threads = Number(process.argv[++i]);
  else if (process.argv[i] === '--flash-attn') args.flashAttn = true;
  else throw new Error(`unknown option ${process.argv[i]}`);
}
if (!args.file) throw new Error('usage: whisper_cpp_bench.mjs MODEL.bin [--threads T] [--flash-attn]');

const t0 = performance.now();
const ctx = await initWhisper({ filePath: args.file, useGpu: false, useFlashAttn: args.flashAttn });
const loadMs = performance.now() - t0;
const b = await ctx.bench(args.threads);
const info = ctx.getModelInfo();
await ctx.release();
console.log(JSON.stringify({
  engine: 'whisper.cpp (@fugood/whisper.node 1.1.3)', threads: b.nThreads, flash_attn: args.flashAttn,
  load_ms: loadMs, encode_ms: b.encodeMs, decode_ms_per_token: b.decodeMs, batch5_ms: b.batchdMs,
  prompt_ms: b.promptMs, system_info: b.config, model_info: info,
}));
