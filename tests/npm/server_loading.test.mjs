// The port opens before the model is loaded: /health answers 503 (OpenAI error body, Retry-After) while the
// model loads and 200 once it is ready. Loading is held back with no hook in the server: an LD_PRELOAD shim
// (tests/npm/hold_open_shim.c, built as libautoglm_test_hold_open.so) makes every open() of the model's
// config.json wait until the test creates a release file. (A FIFO config.json used to do this; model files
// that are not regular files are now refused at once.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, symlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { BIN, SRC, MODEL, freePort } from './server_helpers.mjs';

const SHIM = process.env.AUTOGLM_HOLD_OPEN_SHIM ??
  path.resolve(path.dirname(BIN ?? '.'), '../tests/npm/libautoglm_test_hold_open.so');

const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

test('/health is 503 while the model loads, then 200', async () => {
  assert.ok(existsSync(SHIM), `${SHIM} is missing: build the target autoglm_test_hold_open (or set AUTOGLM_HOLD_OPEN_SHIM)`);
  const demo = path.join(SRC, 'tests/fixtures/tiny_glm4v');
  const dir = mkdtempSync(path.join(tmpdir(), 'autoglm-loading-'));
  for (const f of readdirSync(demo)) symlinkSync(path.join(demo, f), path.join(dir, f));
  const release = path.join(dir, 'release');
  const held = path.join(dir, 'held');
  const port = await freePort();
  const env = {
    ...process.env,
    LD_PRELOAD: [SHIM, process.env.LD_PRELOAD].filter(Boolean).join(':'),
    AUTOGLM_HOLD_OPEN_PATH: path.join(dir, 'config.json'),
    AUTOGLM_HOLD_OPEN_RELEASE: release,
    AUTOGLM_HOLD_OPEN_HELD: held,
    // Under ASan the sanitizer runtime would insist on coming first in the library list.
    ASAN_OPTIONS: [process.env.ASAN_OPTIONS, 'verify_asan_link_order=0'].filter(Boolean).join(':'),
  };
  const srv = spawn(BIN, ['serve', '-m', dir, '--host', '127.0.0.1', '--port', String(port)],
    { stdio: ['ignore', 'pipe', 'pipe'], env });
  let log = '';
  srv.stdout.on('data', (d) => { log += d; });
  srv.stderr.on('data', (d) => { log += d; });
  try {
    const base = `http://127.0.0.1:${port}`;
    let r;
    for (let i = 0; i < 400 && !r; i++) {  // wait for the port
      if (srv.exitCode !== null) throw new Error(`server exited (${srv.exitCode}):\n${log}`);
      try { r = await fetch(`${base}/health`); } catch { await sleep(25); }
    }
    assert.ok(r, `the server never opened its port:\n${log}`);
    assert.equal(r.status, 503);
    assert.equal(r.headers.get('retry-after'), '1');
    const body = await r.json();
    assert.equal(body.error.type, 'service_unavailable_error');
    assert.match(body.error.message, /loading/);
    // The load is really parked in the open of config.json (not merely slow).
    for (let i = 0; i < 400 && !existsSync(held); i++) await sleep(25);
    assert.ok(existsSync(held), `the load never reached config.json:\n${log}`);
    assert.equal((await fetch(`${base}/health`)).status, 503);
    // Requests other than /health are refused the same way while loading.
    const c = await fetch(`${base}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'hi' }] }) });
    assert.equal(c.status, 503);
    writeFileSync(release, '');
    let status = 0;
    for (let i = 0; i < 400 && status !== 200; i++) {
      try {
        status = (await fetch(`${base}/health`)).status;
      } catch (e) {
        throw new Error(`/health failed (${e.cause?.code ?? e.message}); server log:\n${log}`);
      }
      if (status !== 200) await sleep(25);
    }
    assert.equal(status, 200, log);
    const ready = await (await fetch(`${base}/health`)).json();
    assert.deepEqual(ready, { status: 'ok', model: MODEL });
  } finally {
    srv.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});

// The timeout only stops a regression from hanging the suite; nothing is asserted about time.
test('a model directory whose config.json is a named pipe fails the load at once (no hang)', { timeout: 60000 }, async () => {
  const demo = path.join(SRC, 'tests/fixtures/tiny_glm4v');
  const dir = mkdtempSync(path.join(tmpdir(), 'autoglm-fifo-'));
  for (const f of readdirSync(demo)) if (f !== 'config.json') symlinkSync(path.join(demo, f), path.join(dir, f));
  assert.equal(spawnSync('mkfifo', [path.join(dir, 'config.json')]).status, 0);
  const port = await freePort();
  const srv = spawn(BIN, ['serve', '-m', dir, '--host', '127.0.0.1', '--port', String(port)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  srv.stdout.on('data', (d) => { log += d; });
  srv.stderr.on('data', (d) => { log += d; });
  try {
    // No writer ever opens the pipe: the server must still give up on its own, with the reason, and exit.
    const code = await new Promise((ok) => srv.on('exit', (c) => ok(c)));
    assert.notEqual(code, 0);
    assert.match(log, /config\.json: not a regular file \(a named pipe\)/);
  } finally {
    srv.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});
