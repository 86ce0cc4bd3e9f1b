// The `autoglm` CLI driven as users drive it: logits (the stable parity interface), run, bench, random-model,
// and clear errors for bad input. Reference values come from transformers (tests/fixtures/ref).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, mkdtempSync, writeFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const BIN = process.env.AUTOGLM_BIN;
const SRC = process.env.AUTOGLM_SOURCE_DIR;
const MODEL = path.join(SRC, 'tests/fixtures/tiny_glm4v');
const REF = path.join(SRC, 'tests/fixtures/ref');
const cases = JSON.parse(readFileSync(path.join(REF, 'cases.json'), 'utf8'));

function cli(args, input) {
  const r = spawnSync(BIN, args, { input, encoding: 'utf8', maxBuffer: 64 << 20 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

function refLogits(c) {
  const buf = readFileSync(path.join(REF, c.logits.file));
  return new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
}

function compressImagePlaceholders(tokens, imageId) {
  // The HF-expanded prompt has one <|image|> per embedding row; the CLI takes one per image and expands it.
  const out = [];
  for (let i = 0; i < tokens.length; i++) {
    if (tokens[i] === imageId && i > 0 && tokens[i - 1] === imageId) continue;
    out.push(tokens[i]);
  }
  return out;
}

test('logits matches transformers on text and image prompts', () => {
  const cfg = JSON.parse(readFileSync(path.join(MODEL, 'config.json'), 'utf8'));
  for (const c of cases.cases) {
    const args = ['logits', '-m', MODEL, '--threads', '2'];
    let tokens = c.tokens;
    if (c.images) {
      tokens = compressImagePlaceholders(tokens, cfg.image_token_id);
      for (const f of c.images) args.push('--image', path.join(REF, f));
    }
    args.push('--tokens', tokens.join(','));
    const r = cli(args);
    assert.equal(r.code, 0, r.err);
    const j = JSON.parse(r.out);
    const V = cases.vocab_size;
    assert.equal(j.n_positions, c.tokens.length, c.name);
    assert.equal(j.vocab, V);
    const ref = refLogits(c);
    const last = ref.subarray((c.tokens.length - 1) * V, c.tokens.length * V);
    let maxRef = 0, maxDiff = 0;
    for (let i = 0; i < V; i++) {
      maxRef = Math.max(maxRef, Math.abs(last[i]));
      maxDiff = Math.max(maxDiff, Math.abs(last[i] - j.logits_last[i]));
    }
    assert.ok(maxDiff <= 1e-3 * maxRef, `${c.name}: last-position max diff ${maxDiff} vs max |ref| ${maxRef}`);
    for (let p = 0; p < c.tokens.length; p++) {
      const row = ref.subarray(p * V, (p + 1) * V);
      let am = 0;
      for (let i = 1; i < V; i++) if (row[i] > row[am]) am = i;
      assert.equal(j.argmax[p], am, `${c.name}: argmax at position ${p}`);
    }
  }
});

test('run --tokens greedy reproduces the transformers continuation', () => {
  const c = cases.cases.find((x) => x.name === 'chat');
  const r = cli(['run', '-m', MODEL, '--tokens', c.tokens.join(','), '--temp', '0', '-n', '32']);
  assert.equal(r.code, 0, r.err);
  const det = cli(['detokenize', '-m', MODEL], JSON.stringify(c.greedy));
  assert.equal(det.code, 0, det.err);
  assert.equal(r.out.replace(/\n$/, ''), det.out.replace(/\n$/, ''));
});

test('run with -p, --system and --image streams an answer; the demo model is announced', () => {
  const img = path.join(REF, cases.cases.find((x) => x.images).images[0]);
  const r = cli(['run', '-p', 'What is on the screen?', '--system', 'You are a phone agent.', '--image', img,
    '--max-tokens', '8', '--seed', '3', '--stats']);
  assert.equal(r.code, 0, r.err);
  assert.match(r.err, /RANDOM weights/);
  assert.match(r.err, /zai-org\/AutoGLM-Phone-9B/);
  assert.match(r.err, /8 generated|finish=stop/);
  // Same seed, same output.
  const again = cli(['run', '-p', 'What is on the screen?', '--system', 'You are a phone agent.', '--image', img,
    '--max-tokens', '8', '--seed', '3']);
  assert.equal(again.out, r.out);
});

test('bench prints the KV-cache table as JSON', () => {
  const r = cli(['bench', '-m', MODEL, '--contexts', '16,64', '--decode-tokens', '2', '--recompute-reps', '1']);
  assert.equal(r.code, 0, r.err);
  const j = JSON.parse(r.out);
  assert.equal(j.results.length, 2);
  for (const row of j.results) {
    assert.ok(row.kv_cache_ms_per_token > 0);
    assert.ok(row.recompute_ms_per_token > 0);
    assert.ok(row.speedup_kv_over_recompute > 0);
  }
  assert.ok(j.machine_copy_bandwidth_GBps > 0);
  assert.ok('recompute_latency_ratio' in j.growth);
});

test('random-model writes a loadable sharded checkpoint', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'autoglm-rand-'));
  try {
    // One layer, one ViT block and a 1000-row vocabulary keep it under 1 GB; 0.25 GB shards exercise the index.
    const r = cli(['random-model', '-o', dir, '--layers', '1', '--vision-depth', '1', '--vocab', '1000', '--shard-gb', '0.25']);
    assert.equal(r.code, 0, r.err);
    assert.ok(existsSync(path.join(dir, 'model.safetensors.index.json')));
    const l = cli(['logits', '-m', dir, '--tokens', '1,2,3']);
    assert.equal(l.code, 0, l.err);
    const j = JSON.parse(l.out);
    assert.equal(j.vocab, 1000);
    assert.equal(j.argmax.length, 3);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bad input gives a clear error and a non-zero exit', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'autoglm-bad-'));
  try {
    let r = cli(['logits', '-m', path.join(dir, 'nope'), '--tokens', '1']);
    assert.notEqual(r.code, 0);
    assert.match(r.err, /not found|cannot open/);
    r = cli(['logits', '-m', MODEL, '--tokens', '1,x,3']);
    assert.notEqual(r.code, 0);
    assert.match(r.err, /bad token id 'x'/);
    r = cli(['logits', '-m', MODEL, '--tokens', '99999999']);
    assert.notEqual(r.code, 0);
    assert.match(r.err, /outside the vocabulary/);
    // A truncated safetensors file in an otherwise valid directory.
    for (const f of ['config.json', 'tokenizer.json', 'generation_config.json']) writeFileSync(path.join(dir, f), readFileSync(path.join(MODEL, f)));
    writeFileSync(path.join(dir, 'model.safetensors'), readFileSync(path.join(MODEL, 'model.safetensors')).subarray(0, 5000));
    r = cli(['logits', '-m', dir, '--tokens', '1']);
    assert.notEqual(r.code, 0);
    assert.match(r.err, /model\.safetensors.*(past the end|runs past)/);
    r = cli(['logits', '-m', MODEL, '--tokens', `${JSON.parse(readFileSync(path.join(MODEL, 'config.json'))).image_token_id}`, '--image', path.join(MODEL, 'config.json')]);
    assert.notEqual(r.code, 0);
    assert.match(r.err, /image/i);
    r = cli(['frobnicate']);
    assert.equal(r.code, 2);
    assert.match(r.err, /unknown command/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bench-vision reports encoder time and token counts', () => {
  const r = cli(['bench-vision', '-m', MODEL, '--sizes', '336x336,100x37']);
  assert.equal(r.code, 0, r.err);
  const j = JSON.parse(r.out);
  assert.equal(j.results[0].tokens, 144);  // 336x336 -> 24x24 patches -> 144 tokens (spec section 5)
  assert.ok(j.results[0].encode_ms > 0);
  assert.ok(j.results[1].tokens > 0);
  const bad = cli(['bench-vision', '-m', MODEL, '--sizes', '12by7']);
  assert.notEqual(bad.code, 0);
  assert.match(bad.err, /bad size/);
});
