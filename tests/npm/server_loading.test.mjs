// The port opens before the model is loaded: /health answers 503 (OpenAI error body, Retry-After) while the
// model loads and 200 once it is ready. Loading is held back with no hook in the server: the model directory's
// config.json is a named pipe, so every read of it blocks until this test feeds it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, symlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { BIN, SRC, MODEL, freePort } from './server_helpers.mjs';

test('/health is 503 while the model loads, then 200', async () => {
  const demo = path.join(SRC, 'tests/fixtures/tiny_glm4v');
  const dir = mkdtempSync(path.join(tmpdir(), 'autoglm-loading-'));
  for (const f of readdirSync(demo)) if (f !== 'config.json') symlinkSync(path.join(demo, f), path.join(dir, f));
  const fifo = path.join(dir, 'config.json');
  assert.equal(spawnSync('mkfifo', [fifo]).status, 0);
  const port = await freePort();
  const srv = spawn(BIN, ['serve', '-m', dir, '--host', '127.0.0.1', '--port', String(port)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  srv.stdout.on('data', (d) => { log += d; });
  srv.stderr.on('data', (d) => { log += d; });
  let feeder;
  try {
    const base = `http://127.0.0.1:${port}`;
    let r;
    for (let i = 0; i < 400; i++) {  // wait for the port (the model cannot have loaded: config.json is unread)
      try { r = await fetch(`${base}/health`); break; } catch { await new Promise((ok) => setTimeout(ok, 25)); }
    }
    assert.ok(r, 'the server never opened its port');
    assert.equal(r.status, 503);
    assert.equal(r.headers.get('retry-after'), '1');
    const body = await r.json();
    assert.equal(body.error.type, 'service_unavailable_error');
    assert.match(body.error.message, /loading/);
    // Requests other than /health are refused the same way while loading.
    const c = await fetch(`${base}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'hi' }] }) });
    assert.equal(c.status, 503);
    // Feed config.json to every reader until the model is up (one writer at a time: a pipe joins concurrent writes).
    feeder = spawn('sh', ['-c', `while true; do cat ${path.join(demo, 'config.json')} > ${fifo}; sleep 0.2; done`], { stdio: 'ignore' });
    let status = 0;
    for (let i = 0; i < 400 && status !== 200; i++) {
      try {
        status = (await fetch(`${base}/health`)).status;
      } catch (e) {
        throw new Error(`/health failed (${e.cause?.code ?? e.message}); server log:\n${log}`);
      }
      if (status !== 200) await new Promise((ok) => setTimeout(ok, 25));
    }
    assert.equal(status, 200);
    const ready = await (await fetch(`${base}/health`)).json();
    assert.deepEqual(ready, { status: 'ok', model: MODEL });
  } finally {
    feeder?.kill('SIGKILL');
    srv.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});
