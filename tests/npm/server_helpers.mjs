// server_helpers.mjs: starting `autoglm serve` on a free port for the server tests, raw HTTP/SSE helpers, and a
// tiny PNG encoder (so image requests need no fixture files).
import { spawn } from 'node:child_process';
import net from 'node:net';
import http from 'node:http';
import zlib from 'node:zlib';
import path from 'node:path';

export const BIN = process.env.AUTOGLM_BIN;
export const SRC = process.env.AUTOGLM_SOURCE_DIR ?? path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
export const MODEL = 'autoglm-phone-9b';

export async function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

// Starts the server (on the demo model unless `model` names another directory) and resolves once /health says
// ok. Returns {base, port, proc, stop(), log(), saw503}.
export async function startServer(extraArgs = [], { timeoutMs = 60000, model = path.join(SRC, 'models/demo') } = {}) {
  if (!BIN) throw new Error('AUTOGLM_BIN is not set (the built autoglm CLI)');
  const port = await freePort();
  const args = ['serve', '-m', model, '--host', '127.0.0.1', '--port', String(port), ...extraArgs];
  const proc = spawn(BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  proc.stdout.on('data', (d) => { output += d; });
  proc.stderr.on('data', (d) => { output += d; });
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + timeoutMs;
  const states = [];
  while (true) {
    if (proc.exitCode !== null) throw new Error(`server exited early (${proc.exitCode}):\n${output}`);
    try {
      const r = await fetch(`${base}/health`);
      const body = await r.json();
      states.push({ status: r.status, body });
      if (r.status === 200) break;
    } catch { /* not listening yet */ }
    if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error(`server did not become healthy in ${timeoutMs} ms:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  return {
    base, port, proc, states, exited,
    log: () => output,
    async stop(signal = 'SIGTERM') {
      if (proc.exitCode === null) proc.kill(signal);
      return exited;
    },
  };
}

// A raw HTTP request (no client library): resolves {status, headers, text, json}.
export function rawRequest(base, { method = 'POST', path: p = '/v1/chat/completions', body, headers = {} } = {}) {
  const url = new URL(p, base);
  const data = body === undefined ? undefined : (typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body));
  return new Promise((resolve, reject) => {
    let answered = false;
    const req = http.request(url, { method, headers: { 'content-type': 'application/json', ...headers }, agent: false }, (res) => {
      answered = true;
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json;
        try { json = JSON.parse(text); } catch { json = undefined; }
        resolve({ status: res.statusCode, headers: res.headers, text, json });
      });
      res.on('error', reject);
    });
    // A server may answer (413) before it has read the whole body; the rest of our write then fails: not an error.
    req.on('error', (e) => { if (!answered) reject(e); });
    if (data !== undefined) req.write(data);
    req.end();
  });
}

// Parses an SSE body into its data payloads (strings), in order.
export function sseData(text) {
  return text.split('\n\n').filter((e) => e.trim()).map((e) => e.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n'));
}

// Opens a streaming request and resolves {req, res, firstChunk} once the first SSE bytes arrive.
export function openStream(base, body, headers = {}) {
  const url = new URL('/v1/chat/completions', base);
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, agent: false }, (res) => {
      let got = '';
      const onData = (c) => {
        got += c;
        if (got.includes('\n\n')) {
          res.off('data', onData);
          resolve({ req, res, status: res.statusCode, firstChunk: got });
        }
      };
      res.on('data', onData);
      res.on('error', () => {});
    });
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

// ---- PNG ---------------------------------------------------------------------------------------------------
const crcTable = new Uint32Array(256).map((_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(buf) {
  let c = 0xffffffff;
  for (const b of buf) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
function chunk(type, data) {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(td));
  return Buffer.concat([len, td, crc]);
}
// An RGB PNG with a deterministic gradient pattern.
export function makePng(width, height) {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; ihdr[9] = 2; ihdr[10] = 0; ihdr[11] = 0; ihdr[12] = 0;
  const raw = Buffer.alloc((width * 3 + 1) * height);
  for (let y = 0; y < height; y++) {
    raw[y * (width * 3 + 1)] = 0;
    for (let x = 0; x < width; x++) {
      const o = y * (width * 3 + 1) + 1 + x * 3;
      raw[o] = (x * 7) & 255; raw[o + 1] = (y * 5) & 255; raw[o + 2] = ((x + y) * 3) & 255;
    }
  }
  return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk('IHDR', ihdr),
    chunk('IDAT', zlib.deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
}
export const pngDataUri = (w, h) => `data:image/png;base64,${makePng(w, h).toString('base64')}`;
