#!/usr/bin/env node
// bench/soak/soak.mjs: soak test of `autoglm serve` (issue 8, "Soak"). Starts the server on the demo model,
// runs N concurrent clients x M requests of a mix (bench/soak/kinds.mjs: chat and completions, streamed or not,
// images, cancelled streams, disconnects, malformed requests), checks every answer (bench/soak/checks.mjs), polls
// /health on a worker thread, samples the server's RSS, reads KV usage from /metrics once idle, then stops the
// server with SIGTERM. Writes bench/soak/results/<name>.json and prints a summary; exit 1 when anything is found.
//
//   AUTOGLM_BIN=build/release/tools/autoglm node bench/soak/soak.mjs --clients 64 --requests 1000 \
//        --max-seconds 3600 --name demo_64x1000
// Every option: see `args` below (--kebab-case of each key).
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, writeFileSync, mkdirSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { monitorEventLoopDelay } from 'node:perf_hooks';

const HERE = path.dirname(new URL(import.meta.url).pathname);
const SRC = path.resolve(HERE, '../..');

const args = {
  bin: process.env.AUTOGLM_BIN ?? '', model: path.join(SRC, 'models/demo'), name: 'soak', outDir: path.join(HERE, 'results'),
  clients: 64, requests: 1000, maxSeconds: 3600, seed: 1, timeoutS: 120, warmupFraction: 0.05,
  healthIntervalMs: 100, rssIntervalS: 5, rssToleranceMib: 16, idleCheckpoints: 4,
  threads: 1, maxNumSeqs: 32, maxModelLen: 1024, maxWaiting: 1024, maxBodyBytes: 4 << 20, shutdownGrace: 10, serverArgs: '',
};
for (let i = 2; i < process.argv.length; i += 2) {
  const k = process.argv[i].replace(/^--/, '').replace(/-([a-z])/g, (_, c) => c.toUpperCase());
  if (!(k in args)) throw new Error(`unknown option ${process.argv[i]} (options: ${Object.keys(args).join(', ')})`);
  args[k] = typeof args[k] === 'number' ? Number(process.argv[i + 1]) : process.argv[i + 1];
}
if (!args.bin) throw new Error('give the autoglm binary: --bin PATH or AUTOGLM_BIN');
// server_helpers reads AUTOGLM_BIN when it is loaded: set it before the dynamic imports.
process.env.AUTOGLM_BIN = path.resolve(args.bin);
const { startServer, MODEL } = await import('../../tests/npm/server_helpers.mjs');
const { KINDS, make_rng, REPEATED_SIZES, png_uri } = await import('./kinds.mjs');
const { default: OpenAI } = await import(pathToFileURL(path.join(SRC, 'tests/npm/node_modules/openai/index.mjs')).href);

// ---- small helpers -----------------------------------------------------------------------------------------
const pct = (xs, p) => {
  if (!xs.length) return null;
  const s = Float64Array.from(xs).sort();
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const r1 = (x) => (x === null || x === undefined ? x : Math.round(x * 10) / 10);
const lat = (xs) => ({ n: xs.length, p50: r1(pct(xs, 50)), p99: r1(pct(xs, 99)), max: r1(pct(xs, 100)) });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function proc_sample(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (key) => Number(status.match(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm'))?.[1] ?? NaN);
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  const ticks = 100;  // USER_HZ on Linux
  let fds = null;
  try { fds = readdirSync(`/proc/${pid}/fd`).length; } catch { /* not ours to read */ }
  return { rss_mib: r1(kib('VmRSS') / 1024), hwm_mib: r1(kib('VmHWM') / 1024), threads: Number(status.match(/^Threads:\s+(\d+)/m)?.[1]),
    fds, cpu_s: r1((Number(stat[11]) + Number(stat[12])) / ticks), loadavg_1m: os.loadavg()[0] };
}

function git(argv) {
  try { return execFileSync('git', ['-C', SRC, ...argv], { encoding: 'utf8' }).trimEnd(); } catch { return null; }
}

function parse_metrics(text) {
  const m = {};
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const k = line.lastIndexOf(' ');
    const name = line.slice(0, k).replace(/model_name="[^"]*",?/, '').replace('{}', '');
    m[name] = Number(line.slice(k + 1));
  }
  return m;
}
async function metrics(base) {
  return parse_metrics(await (await fetch(`${base}/metrics`, { signal: AbortSignal.timeout(30000) })).text());
}

// ---- start -------------------------------------------------------------------------------------------------
// --max-model-len 1024 (the demo model allows 4096): the context-edge and too-long prompts stay cheap on 2 cores,
// and the KV pool (max_num_seqs x max_model_len) is small enough to be touched in full during warm-up, so RSS
// growth after warm-up means memory the server keeps, not KV pages touched for the first time.
const server_args = ['-t', String(args.threads), '--max-num-seqs', String(args.maxNumSeqs), '--max-model-len', String(args.maxModelLen),
  '--max-waiting', String(args.maxWaiting),
  '--max-body-bytes', String(args.maxBodyBytes), '--shutdown-grace', String(args.shutdownGrace), '--log-level', 'info',
  ...args.serverArgs.split(' ').filter(Boolean)];
const t_launch = performance.now();
const server = await startServer(server_args, { timeoutMs: 300000, model: args.model });
const startup_s = (performance.now() - t_launch) / 1000;
const pid = server.proc.pid;
// Never leave the server running behind us (an exception, Ctrl-C, a kill of this script).
process.on('exit', () => { if (server.proc.exitCode === null && server.proc.signalCode === null) server.proc.kill('SIGKILL'); });
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(130));
let server_exit = null;
server.exited.then((e) => { server_exit = e; });

const models = await (await fetch(`${server.base}/v1/models`)).json();
const max_model_len = models.data[0].max_model_len;
// A text prompt 25% over the context, sized with the server's own tokenizer (on a probe that fits the context).
const SENTENCE = 'open the settings app and scroll. ';
const probe = await (await fetch(`${server.base}/tokenize`, { method: 'POST', headers: { 'content-type': 'application/json' },
  body: JSON.stringify({ model: MODEL, prompt: SENTENCE.repeat(10) }) })).json();
if (!(probe.count > 10)) throw new Error(`/tokenize of a short probe failed: ${JSON.stringify(probe)}`);
const long_text = SENTENCE.repeat(Math.ceil((1.25 * max_model_len * 10) / probe.count));

const report = {
  name: args.name, started_at: new Date().toISOString(),
  machine: { cpus: os.cpus().length, cpu: os.cpus()[0]?.model, mem_gib: r1(os.totalmem() / 2 ** 30), node: process.version,
    loadavg_at_start: os.loadavg().map(r1), note: 'shared 2-core dev machine: other helpers compile at the same time' },
  config: { ...args, bin: path.relative(SRC, path.resolve(args.bin)), model: path.relative(SRC, args.model), total_requests: args.clients * args.requests },
  // What was measured: the tree's commit and the files modified in it (several people edit it at once), and when
  // the binary was built.
  build: { git_head: git(['rev-parse', 'HEAD']), modified_files: git(['status', '--porcelain', '--untracked-files=no']).split('\n').filter(Boolean),
    binary_mtime: statSync(args.bin).mtime.toISOString(), binary_sha256: createHash('sha256').update(readFileSync(args.bin)).digest('hex') },
  server: { command: ['autoglm', 'serve', '-m', path.relative(SRC, args.model), '--host', '127.0.0.1', '--port', String(server.port), ...server_args],
    startup_s: r1(startup_s), max_model_len },
  mix: Object.fromEntries(KINDS.map((k) => [k.name, { group: k.group, weight_pct: r1((100 * k.weight) / KINDS.reduce((a, x) => a + x.weight, 0)) }])),
  repeated_image_sizes: REPEATED_SIZES.map(([w, h]) => `${w}x${h}`),
};

const stats = { image_sizes: {}, one_off_distinct: new Set(), distinct_images: new Set() };
const ctx = { base: server.base, port: server.port, model: MODEL, timeout_ms: args.timeoutS * 1000, max_model_len, long_text,
  max_body_bytes: args.maxBodyBytes, stats,
  openai: new OpenAI({ baseURL: `${server.base}/v1`, apiKey: 'soak', maxRetries: 0, timeout: args.timeoutS * 1000 }) };

// ---- samplers ----------------------------------------------------------------------------------------------
const rss = { before: proc_sample(pid), after_warmup: null, after_soak: null, after_idle: null, series: [] };
const health = new Worker(new URL('./health_worker.mjs', import.meta.url),
  { workerData: { base: server.base, interval_ms: args.healthIntervalMs, timeout_ms: 60000 } });
const health_result = new Promise((resolve) => health.on('message', resolve));
// The clients' own event-loop delay: what of the client-side latencies is this process waiting for a CPU.
const loop_delay = monitorEventLoopDelay({ resolution: 10 });
loop_delay.enable();

// ---- the soak ----------------------------------------------------------------------------------------------
const total_weight = KINDS.reduce((a, k) => a + k.weight, 0);
function pick_kind(rng) {
  let x = rng.next() * total_weight;
  for (const k of KINDS) if ((x -= k.weight) < 0) return k;
  return KINDS[KINDS.length - 1];
}

const per_kind = Object.fromEntries(KINDS.map((k) => [k.name, { group: k.group, n: 0, n_findings: 0, subs: {}, statuses: {}, ms: [] }]));
const findings = { total: 0, by_reason: {}, examples: [] };
let completed = 0, cut_at_cap = false;
const warmup_n = Math.min(args.clients * args.requests, Math.max(args.clients * 4, Math.round(args.warmupFraction * args.clients * args.requests)));
const t0 = performance.now();
const deadline = t0 + args.maxSeconds * 1000;
const since = () => r1((performance.now() - t0) / 1000);

function add_finding(kind, res, log_from, ms) {
  findings.total++;
  const reason = `${kind}/${res.sub}: ${String(res.violations[0]).replace(/\d+/g, 'N').slice(0, 160)}`;
  findings.by_reason[reason] = (findings.by_reason[reason] ?? 0) + 1;
  if (findings.by_reason[reason] <= 3 && findings.examples.length < 100) {
    const log = server.log().slice(log_from).split('\n').filter(Boolean);
    findings.examples.push({ kind, sub: res.sub, at_s: since(), ms: r1(ms), status: res.status, expected: res.expect,
      violations: res.violations.slice(0, 10), request: res.request, response: res.response, server_log: log.slice(-30) });
  }
}

function record(kind, res, ms, log_from) {
  const s = per_kind[kind.name];
  s.n++;
  s.subs[res.sub] = (s.subs[res.sub] ?? 0) + 1;
  s.statuses[res.status] = (s.statuses[res.status] ?? 0) + 1;
  s.ms.push(ms);
  if (res.violations.length) {
    s.n_findings++;
    add_finding(kind.name, res, log_from, ms);
  }
  completed++;
}

// Client c runs its requests [from, to); its generator carries on from one phase to the next.
const rngs = Array.from({ length: args.clients }, (_, c) => make_rng(args.seed * 1000003 + c * 7919));
async function client(c, from, to) {
  const rng = rngs[c];
  for (let r = from; r < to; r++) {
    if (performance.now() > deadline) { cut_at_cap = true; return; }
    if (server_exit) return;
    const kind = pick_kind(rng);
    const log_from = server.log().length;
    const t = performance.now();
    let res;
    try {
      res = await kind.run(ctx, rng);
    } catch (e) {
      res = { sub: 'script_exception', expect: '-', status: 0, violations: [`soak script exception: ${e.stack}`], request: '', response: '' };
    }
    record(kind, res, performance.now() - t, log_from);
  }
}

const sampler = setInterval(() => {
  if (server_exit) return;
  const s = { at_s: since(), completed, ...proc_sample(pid) };
  rss.series.push(s);
  console.error(`[soak ${s.at_s}s] ${completed}/${args.clients * args.requests} done, ${findings.total} findings, ` +
    `RSS ${s.rss_mib} MiB, fds ${s.fds}, load ${r1(s.loadavg_1m)}`);
}, args.rssIntervalS * 1000);

// Waits until nothing runs or waits in the engine (cancelled and disconnected sequences must have been freed),
// then 2 s more; returns the metrics and how long the server took to become idle.
async function settle() {
  const t = performance.now();
  let m = await metrics(server.base);
  while ((m.autoglm_num_requests_running > 0 || m.autoglm_num_requests_waiting > 0) && performance.now() - t < 60000) {
    await sleep(250);
    m = await metrics(server.base);
  }
  const idle_after_s = r1((performance.now() - t) / 1000);
  await sleep(2000);
  return { m: await metrics(server.base), idle_after_s };
}

// The engine keeps the vision tower's output of every distinct image in an LRU (runtime/embedding_cache.h, 512 MiB
// by default): memory it means to keep, growing with each new image. Each entry is [n_tokens, hidden_size] f32;
// n_tokens is counted from /tokenize (image placeholder ids) for every distinct image sent, so each idle
// checkpoint gets an upper bound of the cache (images of requests dropped before the engine are counted too).
async function image_cache_estimate() {
  const config = JSON.parse(readFileSync(path.join(args.model, 'config.json'), 'utf8'));
  const hidden = config.text_config?.hidden_size ?? config.hidden_size;
  const image_token = config.image_token_id;
  const bytes = [];
  for (const key of stats.distinct_images) {
    const [w, h] = key.split('x').map(Number);
    const r = await (await fetch(`${server.base}/tokenize`, { method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: png_uri(w, h) } }] }] }) })).json();
    bytes.push((r.tokens ?? []).filter((t) => t === image_token).length * hidden * 4);
  }
  const upto = (n) => bytes.slice(0, n).reduce((a, b) => a + b, 0);
  const cap = 512 * 2 ** 20;
  for (const p of rss.idle_checkpoints) p.image_cache_estimate_mib = r1(Math.min(cap, upto(p.n_distinct_images)) / 2 ** 20);
}

// Warm-up (the first requests of every client), idle, then the rest, idle: RSS is compared idle to idle.
const warmup_per_client = Math.min(args.requests, Math.ceil(warmup_n / args.clients));
await Promise.all(rngs.map((_, c) => client(c, 0, warmup_per_client)));
if (!server_exit) {
  const { m, idle_after_s } = await settle();
  rss.after_warmup = { ...proc_sample(pid), at_s: since(), completed, idle_after_s, kv_cache_usage_perc: m.autoglm_kv_cache_usage_perc,
    n_distinct_images: stats.distinct_images.size };
  console.error(`[soak ${since()}s] warm-up: ${completed} requests, idle RSS ${rss.after_warmup.rss_mib} MiB`);
}
// The rest in --idle-checkpoints segments, each ending idle: a leak shows as idle RSS growing segment after segment.
rss.idle_checkpoints = rss.after_warmup ? [rss.after_warmup] : [];
for (let k = 1; k <= args.idleCheckpoints; k++) {
  const seg = (i) => warmup_per_client + Math.floor(((args.requests - warmup_per_client) * i) / args.idleCheckpoints);
  await Promise.all(rngs.map((_, c) => client(c, seg(k - 1), seg(k))));
  if (k === args.idleCheckpoints || server_exit) break;
  const { m, idle_after_s } = await settle();
  rss.idle_checkpoints.push({ ...proc_sample(pid), at_s: since(), completed, idle_after_s, kv_cache_usage_perc: m.autoglm_kv_cache_usage_perc,
    n_distinct_images: stats.distinct_images.size });
  console.error(`[soak ${since()}s] checkpoint ${k}: ${completed} requests, idle RSS ${rss.idle_checkpoints.at(-1).rss_mib} MiB`);
}
const soak_s = (performance.now() - t0) / 1000;
clearInterval(sampler);

// ---- after: idle, KV, RSS, shutdown ------------------------------------------------------------------------
const after = {};
if (!server_exit) {
  rss.after_soak = { ...proc_sample(pid), at_s: since(), completed };
  const { m, idle_after_s } = await settle();
  after.idle_after_s = idle_after_s;
  after.metrics = Object.fromEntries(Object.entries(m).filter(([k]) => !k.includes('_bucket')));
  after.kv_cache_usage_perc = m.autoglm_kv_cache_usage_perc;
  after.kv_cache_blocks_total = m.autoglm_kv_cache_blocks_total;
  after.requests_running = m.autoglm_num_requests_running;
  after.requests_waiting = m.autoglm_num_requests_waiting;
  rss.after_idle = { ...proc_sample(pid), at_s: since(), completed, n_distinct_images: stats.distinct_images.size };
  rss.idle_checkpoints.push(rss.after_idle);
  await image_cache_estimate();
}
health.postMessage('stop');
const h = await health_result;
await health.terminate();

// SIGTERM once idle: the server must drain (nothing in flight) and exit 0.
const died_during_soak = !!server_exit;
const log_before_term = server.log().length;
const t_term = performance.now();
let exit = server_exit;
if (!died_during_soak) {
  server.proc.kill('SIGTERM');
  const limit = (args.shutdownGrace + 30) * 1000;
  exit = await Promise.race([server.exited, sleep(limit).then(() => null)]);
  if (!exit) {
    server.proc.kill('SIGKILL');
    exit = { ...(await server.exited), note: `no exit ${limit / 1000} s after SIGTERM: killed` };
  }
}
const log_lines = server.log().split('\n').filter(Boolean);
report.shutdown = { signal_sent: died_during_soak ? null : 'SIGTERM', exit_code: exit.code, exit_signal: exit.signal, note: exit.note,
  died_during_soak, exit_s: r1((performance.now() - t_term) / 1000),
  log_after_sigterm: server.log().slice(log_before_term).split('\n').filter(Boolean).slice(-20) };

// ---- report ------------------------------------------------------------------------------------------------
// Least-squares slope of RSS against completed requests, in MiB per 10,000 requests.
function slope_of(points) {
  if (points.length < 2) return null;
  const xs = points.map((p) => p.completed), ys = points.map((p) => p.rss_mib);
  const mx = xs.reduce((a, b) => a + b, 0) / xs.length, my = ys.reduce((a, b) => a + b, 0) / ys.length;
  const sxx = xs.reduce((a, x) => a + (x - mx) ** 2, 0);
  return sxx > 0 ? r1((1e4 * xs.reduce((a, x, i) => a + (x - mx) * (ys[i] - my), 0)) / sxx) : null;
}
const slope = slope_of(rss.series.filter((p) => p.completed >= warmup_per_client * args.clients));
const idle_slope = slope_of(rss.idle_checkpoints);
const rss_growth = rss.after_idle && rss.after_warmup ? r1(rss.after_idle.rss_mib - rss.after_warmup.rss_mib) : null;
// What grew besides the image embedding cache: the figure the flatness check judges.
const cache_growth = rss.after_idle?.image_cache_estimate_mib !== undefined && rss.after_warmup?.image_cache_estimate_mib !== undefined
  ? r1(rss.after_idle.image_cache_estimate_mib - rss.after_warmup.image_cache_estimate_mib) : 0;
const rss_growth_net = rss_growth === null ? null : r1(rss_growth - cache_growth);
const group_findings = (g) => Object.values(per_kind).filter((s) => s.group === g).reduce((a, s) => a + s.n_findings, 0);
const group_n = (g) => Object.values(per_kind).filter((s) => s.group === g).reduce((a, s) => a + s.n, 0);
const notable = log_lines.filter((l) => /\b(warn|warning|error|critical)\b/i.test(l) && !/DEMO model/.test(l));

report.duration = { soak_s: r1(soak_s), cut_at_max_seconds: cut_at_cap, completed, requests_per_s: r1(completed / soak_s),
  loadavg_at_end: os.loadavg().map(r1), loadavg_1m_during: lat(rss.series.map((x) => x.loadavg_1m)),
  client_event_loop_delay_ms: { p50: r1(loop_delay.percentile(50) / 1e6), p99: r1(loop_delay.percentile(99) / 1e6), max: r1(loop_delay.max / 1e6) }, server_cpu_s: rss.after_idle?.cpu_s ?? null, soak_script_cpu_s: r1((process.cpuUsage().user + process.cpuUsage().system) / 1e6) };
report.requests = Object.fromEntries(Object.entries(per_kind).map(([k, s]) => [k, { group: s.group, n: s.n, findings: s.n_findings,
  statuses: s.statuses, subs: s.subs, latency_ms: lat(s.ms) }]));
report.images_sent = { by_size: stats.image_sizes, one_off_distinct_sizes: stats.one_off_distinct.size };
report.health = { polls: h.latencies.length, interval_ms: args.healthIntervalMs, statuses: h.statuses, latency_ms: lat(h.latencies),
  slowest: h.slowest.map((s) => ({ ms: r1(s.ms), at_s: r1(s.at_s), status: s.status })) };
report.rss = { ...rss, warmup_requests: warmup_per_client * args.clients, growth_after_warmup_mib: rss_growth, slope_mib_per_10k_requests: slope,
  idle_slope_mib_per_10k_requests: idle_slope, idle_mib: rss.idle_checkpoints.map((p) => p.rss_mib),
  max_during_soak_mib: Math.max(...[...rss.series, rss.before, rss.after_warmup, rss.after_soak].filter(Boolean).map((s) => s.rss_mib)) };
report.after = after;
report.server_log = { lines: log_lines.length, notable: notable.slice(0, 100), n_notable: notable.length, tail: log_lines.slice(-15) };
report.findings = findings;
// The server's own count of 5xx answers (a cross-check: a 5xx to a disconnected client is seen only here).
const server_5xx = Object.entries(after.metrics ?? {}).filter(([k]) => /http_requests_total\{status="5/.test(k)).reduce((a, [, v]) => a + v, 0);
const checks = {
  well_formed_errors: { value: group_findings('ok'), of: group_n('ok'), pass: group_findings('ok') === 0 },
  malformed_wrong_status: { value: group_findings('malformed'), of: group_n('malformed'), pass: group_findings('malformed') === 0 },
  cancel_and_disconnect_problems: { value: group_findings('cancel') + group_findings('disconnect'),
    of: group_n('cancel') + group_n('disconnect'), pass: group_findings('cancel') + group_findings('disconnect') === 0 },
  server_5xx_in_metrics: { value: server_5xx, pass: server_5xx === 0 },
  health_non_200: { value: h.latencies.length - (h.statuses['200'] ?? 0), pass: (h.statuses['200'] ?? 0) === h.latencies.length },
  health_p99_ms: { value: report.health.latency_ms.p99 },
  rss_flat_after_warmup: { value_mib: rss_growth_net, idle_growth_mib: rss_growth, image_cache_growth_mib: cache_growth,
    idle_checkpoints_mib: rss.idle_checkpoints.map((p) => p.rss_mib), image_cache_estimate_mib: rss.idle_checkpoints.map((p) => p.image_cache_estimate_mib),
    idle_slope_mib_per_10k_requests: idle_slope, tolerance_mib: args.rssToleranceMib, pass: rss_growth_net !== null && rss_growth_net <= args.rssToleranceMib },
  kv_cache_usage_after_idle: { value: after.kv_cache_usage_perc ?? null, pass: after.kv_cache_usage_perc === 0 },
  server_alive_and_exit_0_on_sigterm: { value: exit.code, signal: exit.signal, pass: !died_during_soak && exit.code === 0 },
  completed_all_requests: { value: completed, of: args.clients * args.requests, pass: completed === args.clients * args.requests },
};
report.checks = checks;
report.pass = Object.values(checks).every((c) => c.pass !== false);

mkdirSync(args.outDir, { recursive: true });
const out = path.join(args.outDir, `${args.name}.json`);
writeFileSync(out, JSON.stringify(report, null, 1) + '\n');
console.log(JSON.stringify({ report: path.relative(process.cwd(), out), pass: report.pass, checks, duration: report.duration,
  health_ms: report.health.latency_ms,
  rss_mib: { before: rss.before.rss_mib, after_warmup: rss.after_warmup?.rss_mib, max: report.rss.max_during_soak_mib,
    after_soak: rss.after_soak?.rss_mib, after_idle: rss.after_idle?.rss_mib, slope_per_10k: slope, idle_checkpoints: rss.idle_checkpoints.map((p) => p.rss_mib) },
  requests: Object.fromEntries(Object.entries(per_kind).map(([k, s]) => [k, `${s.n} (${s.n_findings} findings)`])),
  findings_by_reason: findings.by_reason }, null, 1));
process.exit(report.pass ? 0 : 1);
