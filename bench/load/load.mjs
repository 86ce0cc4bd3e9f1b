#!/usr/bin/env node
// bench/load/load.mjs: load generator for `autoglm serve` (or any OpenAI-compatible server).
// N concurrent clients in a closed loop, or open-loop Poisson arrivals at a given rate; every request is a
// streamed chat completion with include_usage, so output tokens are counted exactly. Writes one JSON report:
// request throughput, output tokens/s, TTFT / inter-token latency / end-to-end percentiles, errors.
//
//   node bench/load/load.mjs --base http://127.0.0.1:8000 --mode closed --concurrency 8 --requests 64 \
//        --max-tokens 64 [--image-size 448x448] [--api-key K] [--logprobs false] [--out report.json]
//   node bench/load/load.mjs --mode poisson --rate 4 --duration 30 ...
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import zlib from 'node:zlib';

function parseArgs(argv) {
  const a = { base: 'http://127.0.0.1:8000', mode: 'closed', concurrency: 4, requests: 32, rate: 2, duration: 20,
    maxTokens: 64, model: 'autoglm-phone-9b', prompt: 'Describe what a phone agent does, step by step.',
    imageSize: '', apiKey: '', out: '', ignoreEos: true, seed: 1, logprobs: true };
  for (let i = 2; i < argv.length; i++) {
    const k = argv[i].replace(/^--/, '').replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    const v = argv[++i];
    if (!(k in a)) throw new Error(`unknown option --${argv[i - 1]}`);
    a[k] = typeof a[k] === 'number' ? Number(v) : typeof a[k] === 'boolean' ? v !== 'false' : v;
  }
  return a;
}

function pngDataUri(w, h) {
  const crcT = new Uint32Array(256).map((_, n) => { let c = n; for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1; return c >>> 0; });
  const crc = (b) => { let c = 0xffffffff; for (const x of b) c = crcT[(c ^ x) & 0xff] ^ (c >>> 8); return (c ^ 0xffffffff) >>> 0; };
  const chunk = (t, d) => { const l = Buffer.alloc(4); l.writeUInt32BE(d.length); const td = Buffer.concat([Buffer.from(t), d]); const c = Buffer.alloc(4); c.writeUInt32BE(crc(td)); return Buffer.concat([l, td, c]); };
  const ihdr = Buffer.alloc(13); ihdr.writeUInt32BE(w, 0); ihdr.writeUInt32BE(h, 4); ihdr[8] = 8; ihdr[9] = 2;
  const raw = Buffer.alloc((w * 3 + 1) * h);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) { const o = y * (w * 3 + 1) + 1 + x * 3; raw[o] = x; raw[o + 1] = y; raw[o + 2] = x ^ y; }
  const png = Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk('IHDR', ihdr), chunk('IDAT', zlib.deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
  return `data:image/png;base64,${png.toString('base64')}`;
}

const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity });

// One streamed request; resolves {ok, ttft, itls[], e2e, outTokens, promptTokens, error}.
function oneRequest(cfg, body) {
  const url = new URL('/v1/chat/completions', cfg.base);
  const t0 = performance.now();
  return new Promise((resolve) => {
    const headers = { 'content-type': 'application/json' };
    if (cfg.apiKey) headers.authorization = `Bearer ${cfg.apiKey}`;
    const req = http.request(url, { method: 'POST', headers, agent }, (res) => {
      let buf = '';
      let ttft = null;
      let last = null;
      const itls = [];
      let usage = null;
      let error = res.statusCode === 200 ? null : `HTTP ${res.statusCode}`;
      res.setEncoding('utf8');
      res.on('data', (d) => {
        buf += d;
        let k;
        while ((k = buf.indexOf('\n\n')) >= 0) {
          const ev = buf.slice(0, k);
          buf = buf.slice(k + 2);
          if (!ev.startsWith('data: ')) continue;
          const data = ev.slice(6);
          if (data === '[DONE]') continue;
          let j;
          try { j = JSON.parse(data); } catch { error = 'bad JSON chunk'; continue; }
          if (j.error) { error = j.error.message; continue; }
          if (j.usage) usage = j.usage;
          const c = j.choices?.[0];
          if (!c) continue;
          // Tokens carried by this chunk: exact with logprobs; without, one per chunk that has text.
          const n = cfg.logprobs ? (c.logprobs?.content?.length ?? 0)
            : (c.delta?.content || c.delta?.reasoning_content ? 1 : 0);
          if (n > 0) {
            const now = performance.now();
            if (ttft === null) ttft = now - t0;
            else itls.push((now - last) / n);
            for (let i = 1; i < n; i++) itls.push(0);
            last = now;
          }
        }
      });
      res.on('end', () => {
        const e2e = performance.now() - t0;
        if (!error && !usage) error = 'no usage chunk';
        resolve({ ok: !error, error, ttft, itls, e2e, outTokens: usage?.completion_tokens ?? 0, promptTokens: usage?.prompt_tokens ?? 0 });
      });
      res.on('error', (e) => resolve({ ok: false, error: String(e), itls: [] }));
    });
    req.on('error', (e) => resolve({ ok: false, error: String(e), itls: [] }));
    req.end(JSON.stringify(body));
  });
}

function pct(xs, p) {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}
const summary = (xs) => ({ mean: xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null, p50: pct(xs, 50), p90: pct(xs, 90), p99: pct(xs, 99), max: pct(xs, 100) });

export async function runLoad(cfg) {
  const content = cfg.imageSize
    ? [{ type: 'image_url', image_url: { url: pngDataUri(...cfg.imageSize.split('x').map(Number)) } }, { type: 'text', text: cfg.prompt }]
    : cfg.prompt;
  const makeBody = (i) => ({ model: cfg.model, stream: true, stream_options: { include_usage: true }, logprobs: cfg.logprobs,
    max_tokens: cfg.maxTokens, ignore_eos: cfg.ignoreEos, temperature: 0.7, seed: cfg.seed + i,
    messages: [{ role: 'system', content: 'You are a helpful assistant.' }, { role: 'user', content }] });

  const results = [];
  const t0 = performance.now();
  if (cfg.mode === 'closed') {
    let next = 0;
    await Promise.all(Array.from({ length: cfg.concurrency }, async () => {
      while (next < cfg.requests) results.push(await oneRequest(cfg, makeBody(next++)));
    }));
  } else if (cfg.mode === 'poisson') {
    const pending = [];
    let i = 0;
    const end = t0 + cfg.duration * 1000;
    while (performance.now() < end) {
      pending.push(oneRequest(cfg, makeBody(i++)).then((r) => results.push(r)));
      const gap = -Math.log(1 - Math.random()) / cfg.rate * 1000;  // exponential inter-arrival
      await new Promise((r) => setTimeout(r, gap));
    }
    await Promise.all(pending);
  } else {
    throw new Error(`--mode must be closed or poisson, got ${cfg.mode}`);
  }
  const wall = (performance.now() - t0) / 1000;
  const ok = results.filter((r) => r.ok);
  const errors = {};
  for (const r of results.filter((r) => !r.ok)) errors[r.error] = (errors[r.error] ?? 0) + 1;
  const outTokens = ok.reduce((a, r) => a + r.outTokens, 0);
  return {
    config: { ...cfg, apiKey: cfg.apiKey ? '<set>' : '' },
    n_requests: results.length, n_ok: ok.length, n_errors: results.length - ok.length, errors,
    wall_s: wall,
    request_throughput_per_s: ok.length / wall,
    output_tokens_per_s: outTokens / wall,
    output_tokens_total: outTokens,
    prompt_tokens_mean: ok.length ? ok.reduce((a, r) => a + r.promptTokens, 0) / ok.length : null,
    ttft_ms: summary(ok.map((r) => r.ttft).filter((x) => x !== null)),
    inter_token_latency_ms: summary(ok.flatMap((r) => r.itls)),
    e2e_latency_ms: summary(ok.map((r) => r.e2e)),
    per_request_decode_tokens_per_s: summary(ok.filter((r) => r.outTokens > 1 && r.ttft !== null)
      .map((r) => (r.outTokens - 1) / ((r.e2e - r.ttft) / 1000))),
  };
}

export { parseArgs, agent };

if (import.meta.url === `file://${process.argv[1]}`) {
  const cfg = parseArgs(process.argv);
  const report = await runLoad(cfg);
  const text = JSON.stringify(report, null, 2);
  if (cfg.out) writeFileSync(cfg.out, text + '\n');
  console.log(text);
  agent.destroy();
}
