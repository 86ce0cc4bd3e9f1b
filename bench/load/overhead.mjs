#!/usr/bin/env node
// bench/load/overhead.mjs: load figures for `autoglm serve` plus its overhead over the bare engine at batch 1.
// Starts the server (same model, same engine threads), runs load.mjs at concurrency 1 without logprobs (the
// in-process driver does the same work: same prompt, max_tokens, ignore_eos, temperature), runs
// inproc_bench (bench/load/inproc_bench.cpp), then closed-loop runs at several concurrencies and one Poisson
// run. Writes one JSON report.
//
//   node bench/load/overhead.mjs --bin build/release/tools/autoglm --inproc build/.../inproc_bench \
//        [--model models/demo] [--threads 2] [--max-tokens 64] [--out bench/load/results/demo.json]
import { spawn, execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { runLoad, agent } from './load.mjs';

const args = { bin: '', inproc: '', model: path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../models/demo'),
  threads: 2, maxTokens: 64, out: '', repeats: 8, concurrency: '1,4,16,64', rate: 20, duration: 10 };
for (let i = 2; i < process.argv.length; i += 2) {
  const k = process.argv[i].replace(/^--/, '').replace(/-([a-z])/g, (_, c) => c.toUpperCase());
  if (!(k in args)) throw new Error(`unknown option ${process.argv[i]}`);
  args[k] = typeof args[k] === 'number' ? Number(process.argv[i + 1]) : process.argv[i + 1];
}

const port = await new Promise((resolve) => { const s = net.createServer(); s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); }); });
const server = spawn(args.bin, ['serve', '-m', args.model, '--host', '127.0.0.1', '--port', String(port), '-t', String(args.threads),
  '--max-num-seqs', '64', '--max-waiting', '1024', '--log-level', 'warn'], { stdio: ['ignore', 'inherit', 'inherit'] });
const base = `http://127.0.0.1:${port}`;
for (;;) {
  try { if ((await fetch(`${base}/health`)).status === 200) break; } catch { /* starting */ }
  await new Promise((r) => setTimeout(r, 50));
}

const prompt = 'Describe what a phone agent does, step by step.';
const common = { base, model: 'autoglm-phone-9b', prompt, maxTokens: args.maxTokens, imageSize: '', apiKey: '', out: '',
  ignoreEos: true, seed: 1 };
const report = { machine: { cpus: os.cpus().length, cpu: os.cpus()[0]?.model, node: process.version }, model: args.model,
  engine_threads: args.threads, max_tokens: args.maxTokens };

// Batch 1: HTTP vs in-process.
await runLoad({ ...common, mode: 'closed', concurrency: 1, requests: 2, logprobs: false });  // warm-up
const http1 = await runLoad({ ...common, mode: 'closed', concurrency: 1, requests: args.repeats, logprobs: false });
server.kill('SIGTERM');
await new Promise((r) => server.on('exit', r));
const inproc = JSON.parse(execFileSync(args.inproc, [args.model, String(args.maxTokens), String(args.repeats), String(args.threads), prompt],
  { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }));
const httpTps = http1.per_request_decode_tokens_per_s.p50;
report.batch1 = {
  http: { ttft_ms_p50: http1.ttft_ms.p50, decode_tokens_per_s_p50: httpTps, e2e_ms_p50: http1.e2e_latency_ms.p50,
    overall_tokens_per_s: http1.output_tokens_per_s },
  in_process: inproc,
  decode_overhead_pct: 100 * (inproc.decode_tokens_per_s_median / httpTps - 1),
  ttft_overhead_ms: http1.ttft_ms.p50 - inproc.ttft_ms_median,
};

// Throughput under load (a fresh server, so batch-1 state does not matter).
const server2 = spawn(args.bin, ['serve', '-m', args.model, '--host', '127.0.0.1', '--port', String(port), '-t', String(args.threads),
  '--max-num-seqs', '64', '--max-waiting', '1024', '--log-level', 'warn'], { stdio: ['ignore', 'inherit', 'inherit'] });
for (;;) {
  try { if ((await fetch(`${base}/health`)).status === 200) break; } catch { /* starting */ }
  await new Promise((r) => setTimeout(r, 50));
}
report.closed_loop = [];
for (const c of args.concurrency.split(',').map(Number)) {
  const r = await runLoad({ ...common, mode: 'closed', concurrency: c, requests: Math.max(2 * c, 16), logprobs: true });
  report.closed_loop.push({ concurrency: c, ...r, config: undefined });
}
const p = await runLoad({ ...common, mode: 'poisson', rate: args.rate, duration: args.duration, logprobs: true });
report.poisson = { rate_per_s: args.rate, ...p, config: undefined };
server2.kill('SIGTERM');
await new Promise((r) => server2.on('exit', r));
agent.destroy();

const text = JSON.stringify(report, null, 2);
if (args.out) writeFileSync(args.out, text + '\n');
console.log(text);
