// hardening_images.test.mjs: image bombs and oversized prompts over raw HTTP (issue 8, class 4 and the
// tokenizing half of class 5). Twenty all-zero 8000x8000 PNGs (~190 KB each, 192 MB each decoded) in one request
// are refused from their headers with a 400 before any is decoded, so the server's peak RSS barely moves, also
// with several such requests at once; a multi-megabyte text prompt gets the context 400 from a tokenizer that
// stops at the limit; a PNG whose header lies is a 400 naming the image.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import zlib from 'node:zlib';
import { startServer, rawRequest, MODEL } from './server_helpers.mjs';

// VmHWM (peak resident set) and VmRSS of a process, in MiB.
function memMiB(pid) {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name) => Number(new RegExp(`${name}:\\s+(\\d+)`).exec(status)[1]) / 1024;
  return { hwm: field('VmHWM'), rss: field('VmRSS') };
}

function pngChunk(type, data) {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(zlib.crc32(td));
  return Buffer.concat([len, td, crc]);
}

// An RGB PNG declaring width x height whose IDAT inflates to `rows` all-zero rows (rows < height: the header
// lies). zlib turns the 192 MB of an 8000x8000 image into ~190 KB.
function zeroPng(width, height, rows = height) {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; ihdr[9] = 2;
  const idat = zlib.deflateSync(Buffer.alloc((width * 3 + 1) * rows));
  return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), pngChunk('IHDR', ihdr),
    pngChunk('IDAT', idat), pngChunk('IEND', Buffer.alloc(0))]);
}

const imagePart = (png) => ({ type: 'image_url', image_url: { url: `data:image/png;base64,${png.toString('base64')}` } });

describe('image bombs and oversized prompts', () => {
  let srv;
  let bomb;
  before(async () => {
    // The demo model's context is 4096 tokens; 64 MiB bodies so the multi-megabyte prompt is not a 413.
    srv = await startServer(['--max-body-bytes', String(64 << 20)]);
    bomb = zeroPng(8000, 8000);
  });
  after(async () => { await srv?.stop(); });

  function bombRequest(n) {
    const content = [{ type: 'text', text: 'What is on these screens?' }];
    for (let i = 0; i < n; i++) content.push(imagePart(bomb));
    return { model: MODEL, messages: [{ role: 'user', content }], max_tokens: 1 };
  }

  test('20 zero 8000x8000 PNGs in one request: 400 from the headers, nothing decoded', async () => {
    assert.ok(bomb.length < 400 << 10, `bomb is ${bomb.length} bytes`);
    const before = memMiB(srv.proc.pid);
    const r = await rawRequest(srv.base, { body: bombRequest(20) });
    assert.equal(r.status, 400, r.text.slice(0, 300));
    assert.equal(r.json.error.type, 'invalid_request_error');
    assert.equal(r.json.error.param, 'messages');
    // 6084 tokens each by smart_resize of the declared size (capped by the preprocessor's longest_edge): the
    // first image already passes the limit.
    assert.match(r.json.error.message, /more than 4095 tokens \(its images alone take at least 6084\)/);
    const after = memMiB(srv.proc.pid);
    // Decoding even one image would add 192 MB; the old code kept all twenty (+2.5 GB). The body itself is 5 MB.
    assert.ok(after.hwm - before.hwm < 150, `peak RSS grew by ${(after.hwm - before.hwm).toFixed(0)} MiB`);
    const h = await rawRequest(srv.base, { method: 'GET', path: '/health' });
    assert.equal(h.status, 200);
  });

  test('several bomb requests at once do not multiply memory', async () => {
    const before = memMiB(srv.proc.pid);
    const rs = await Promise.all(Array.from({ length: 4 }, () => rawRequest(srv.base, { body: bombRequest(20) })));
    for (const r of rs) assert.equal(r.status, 400, r.text.slice(0, 300));
    const after = memMiB(srv.proc.pid);
    assert.ok(after.hwm - before.hwm < 300, `peak RSS grew by ${(after.hwm - before.hwm).toFixed(0)} MiB`);
  });

  test('a PNG whose header lies about its size is a 400 naming the image', async () => {
    const liar = zeroPng(600, 600, 1);  // declares 600x600, holds one row
    const content = [{ type: 'text', text: 'x' }, imagePart(liar)];
    const r = await rawRequest(srv.base, { body: { model: MODEL, messages: [{ role: 'user', content }], max_tokens: 1 } });
    assert.equal(r.status, 400, r.text.slice(0, 300));
    assert.equal(r.json.error.param, 'messages[0].content[1].image_url');
    assert.match(r.json.error.message, /invalid image: png/);
  });

  test('a multi-megabyte text prompt gets the context 400 from the tokenizer stopping at the limit', async () => {
    const long = 'The quick brown fox jumps over the lazy dog. '.repeat(100_000);  // 4.5 MB, ~1M tokens
    let r = await rawRequest(srv.base, { body: { model: MODEL, messages: [{ role: 'user', content: long }], max_tokens: 1 } });
    assert.equal(r.status, 400, r.text.slice(0, 300));
    assert.equal(r.json.error.param, 'messages');
    assert.match(r.json.error.message, /the prompt has more than 4095 tokens/);
    r = await rawRequest(srv.base, { path: '/v1/completions', body: { model: MODEL, prompt: long, max_tokens: 1 } });
    assert.equal(r.status, 400, r.text.slice(0, 300));
    assert.equal(r.json.error.param, 'prompt');
    assert.match(r.json.error.message, /more than 4095 tokens/);
    // A short prompt on the same server is served.
    r = await rawRequest(srv.base, { body: { model: MODEL, messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 } });
    assert.equal(r.status, 200, r.text.slice(0, 300));
  });
});
