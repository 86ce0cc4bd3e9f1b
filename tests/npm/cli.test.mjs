// The `autoglm` CLI driven as users drive it: logits (the stable parity interface), run, bench, random-model,
// and clear errors for bad input. Reference values come from transformers (tests/fixtures/ref).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, mkdtempSync, writeFileSync, rmSync, existsSync, readdirSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const BIN = process.env.AUTOGLM_BIN;
const SRC = process.env.AUTOGLM_SOURCE_DIR;
const MODEL = path.join(SRC, 'tests/fixtures/tiny_glm4v');
const REF = path.join(SRC, 'tests/fixtures/ref');
const cases = JSON.parse(readFileSync(path.join(REF, 'cases.json'), 'utf8'));

// `timeout` only keeps a regression (a load blocked on a FIFO) from hanging the suite: the process is killed
// and the test fails on its exit status.
function cli(args, input, timeout = 0, env = process.env) {
  const r = spawnSync(BIN, args, { input, encoding: 'utf8', maxBuffer: 64 << 20, timeout, env });
  return { code: r.status, signal: r.signal, out: r.stdout, err: r.stderr };
}

// fp32 parity with transformers needs the CPU's exact GEMM: by default, where the CPU has AVX-512 BF16, prefill's
// linears on BF16 weights round x to bf16 (kernels/cpu/gemm_bf16.h), as torch's bf16 model does.
const EXACT_GEMM = { ...process.env, AUTOGLM_CPU_BF16_GEMM: '0' };

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
    const r = cli(args, undefined, 0, EXACT_GEMM);
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
  const r = cli(['run', '-m', MODEL, '--tokens', c.tokens.join(','), '--temp', '0', '-n', '32'], undefined, 0, EXACT_GEMM);
  assert.equal(r.code, 0, r.err);
  const det = cli(['detokenize', '-m', MODEL], JSON.stringify(c.greedy));
  assert.equal(det.code, 0, det.err);
  assert.equal(r.out.replace(/\n$/, ''), det.out.replace(/\n$/, ''));
});

test('run --kv-type: every KV element type generates; a bad one is named', () => {
  const c = cases.cases.find((x) => x.name === 'chat');
  for (const t of ['f32', 'f16', 'bf16', 'q8_0']) {
    const r = cli(['run', '-m', MODEL, '--tokens', c.tokens.join(','), '--temp', '0', '-n', '4', '--kv-type', t, '--stats']);
    assert.equal(r.code, 0, `${t}: ${r.err}`);
    assert.match(r.err, /4 generated|finish=stop/, t);
  }
  const bad = cli(['run', '-m', MODEL, '--tokens', '1,2', '--kv-type', 'q4']);
  assert.notEqual(bad.code, 0);
  assert.match(bad.err, /--kv-type must be f32, f16, bf16 or q8_0, got 'q4'/);
});

test('logits --dump-dir writes the named intermediates of the forward (and of the vision tower)', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'autoglm-dump-'));
  try {
    const cfg = JSON.parse(readFileSync(path.join(MODEL, 'config.json'), 'utf8'));
    const img = path.join(REF, cases.cases.find((x) => x.images).images[0]);
    const r = cli(['logits', '-m', MODEL, '--tokens', `1,2,${cfg.image_token_id},3`, '--image', img, '--dump-dir', dir]);
    assert.equal(r.code, 0, r.err);
    const n = JSON.parse(r.out).n_positions;
    const index = JSON.parse(readFileSync(path.join(dir, 'index.json'), 'utf8'));
    const byName = Object.fromEntries(index.map((e) => [e.name, e]));
    assert.deepEqual([byName['hidden.0'].rows, byName['hidden.0'].cols], [n, cfg.text_config.hidden_size]);
    assert.ok(byName.merger, 'the vision tower dumped its output');
    for (const e of index) assert.equal(readFileSync(path.join(dir, `${e.name}.f32`)).length, e.rows * e.cols * 4, e.name);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
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
  assert.ok(j.machine_read_bandwidth_GBps > 0);
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

test('random-model writes other text dimensions when asked (the 1.5B-class peer benchmark)', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'autoglm-rand-dims-'));
  try {
    const r = cli(['random-model', '-o', dir, '--layers', '1', '--vision-depth', '1', '--vocab', '1000',
                   '--hidden', '256', '--heads', '2', '--kv-heads', '1', '--intermediate', '384']);
    assert.equal(r.code, 0, r.err);
    const cfg = JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8'));
    assert.equal(cfg.text_config.hidden_size, 256);
    assert.equal(cfg.text_config.intermediate_size, 384);
    assert.equal(cfg.text_config.num_attention_heads, 2);
    assert.equal(cfg.text_config.num_key_value_heads, 1);
    assert.equal(cfg.vision_config.out_hidden_size, 256);  // the merger projects into the text hidden size
    const l = cli(['logits', '-m', dir, '--tokens', '1,2,3']);
    assert.equal(l.code, 0, l.err);
    assert.equal(JSON.parse(l.out).argmax.length, 3);
    const bad = cli(['random-model', '-o', dir, '--config-only', '--hidden', '300', '--heads', '2']);
    assert.notEqual(bad.code, 0);
    assert.match(bad.err, /--hidden must be 128 x --heads/);
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

test('bench-agent times a phone-agent step with the system prompt served from the prefix cache', () => {
  const r = cli(['bench-agent', '-m', MODEL, '--system-tokens', '64', '--image', '112x84', '--text-tokens', '5',
    '--answer-tokens', '4', '--reps', '2', '--kv-type', 'f32']);
  assert.equal(r.code, 0, r.err);
  const j = JSON.parse(r.out);
  assert.equal(j.image.tokens, 12);  // 112x84 -> 8x6 patches -> 12 tokens
  assert.equal(j.prompt_tokens, 64 + 2 + 12 + 5);
  // The first request cached the system prompt's whole 16-token blocks: every step reads them from the cache.
  assert.equal(j.cached_prompt_tokens, 64);
  assert.ok(j.ttft_ms > 0 && j.total_ms >= j.ttft_ms);
  assert.equal(j.steps.length, 2);
  const bad = cli(['bench-agent', '-m', MODEL, '--image', '12by7']);
  assert.notEqual(bad.code, 0);
  assert.match(bad.err, /expected WxH/);
});

// A scratch copy of the tiny model (symlinks) with `replace` files written in place of the originals:
// a string is the new content, null removes the file, 'fifo' makes it a named pipe.
function modelDirWith(replace) {
  const dir = mkdtempSync(path.join(tmpdir(), 'autoglm-files-'));
  for (const f of readdirSync(MODEL)) if (!(f in replace)) symlinkSync(path.join(MODEL, f), path.join(dir, f));
  for (const [f, v] of Object.entries(replace)) {
    if (v === 'fifo') assert.equal(spawnSync('mkfifo', [path.join(dir, f)]).status, 0);
    else if (v !== null) writeFileSync(path.join(dir, f), v);
  }
  return dir;
}

function configWith(edit) {
  const cfg = JSON.parse(readFileSync(path.join(MODEL, 'config.json'), 'utf8'));
  edit(cfg);
  return JSON.stringify(cfg);
}

test('run and logits refuse bad model files with the reason: FIFOs, bad config values, missing files', () => {
  const cases = [
    { files: { 'model.safetensors': 'fifo' }, err: /model\.safetensors: not a regular file \(a named pipe\)/ },
    { files: { 'model.safetensors.index.json': 'fifo' }, err: /model\.safetensors\.index\.json: not a regular file \(a named pipe\)/ },
    { files: { 'config.json': 'fifo' }, err: /config\.json: not a regular file \(a named pipe\)/ },
    { files: { 'generation_config.json': 'fifo' }, err: /generation_config\.json: not a regular file \(a named pipe\)/ },
    { files: { 'config.json': configWith((c) => { c.text_config.max_position_embeddings = 0; }) },
      err: /config\.json: text_config\.max_position_embeddings must be between 1 and 16777216, got 0/ },
    { files: { 'config.json': configWith((c) => { c.text_config.max_position_embeddings = 2 ** 40; }) },
      err: /config\.json: text_config\.max_position_embeddings must be between 1 and 16777216, got 1099511627776/ },
    { files: { 'config.json': configWith((c) => { c.text_config.eos_token_id = [1456, 200000]; }) },
      err: /config\.json: text_config\.eos_token_id\[1\] must be between 0 and 1502, got 200000/ },
    { files: { 'config.json': configWith((c) => { c.vision_config.num_heads = 3; }) },
      err: /config\.json: vision_config\.hidden_size \(64\) must be a multiple of num_heads \(3\)/ },
    { files: { 'generation_config.json': '{"eos_token_id": 99999}' },
      err: /generation_config\.json: eos_token_id must be between 0 and 1502, got 99999/ },
    { files: { 'config.json': null }, err: /config\.json: cannot open/ },
    { files: { 'model.safetensors': null }, err: /no model\.safetensors or model\.safetensors\.index\.json/ },
  ];
  for (const c of cases) {
    const dir = modelDirWith(c.files);
    try {
      for (const args of [['logits', '-m', dir, '--tokens', '1,2'], ['run', '-m', dir, '-p', 'hi', '-n', '1']]) {
        const r = cli(args, undefined, 30000);
        const what = `${args[0]} with ${JSON.stringify(Object.keys(c.files))}`;
        assert.equal(r.signal, null, `${what}: killed by ${r.signal} (blocked or crashed)\n${r.err}`);
        assert.equal(r.code, 1, `${what}: exit ${r.code}\n${r.err}`);
        assert.match(r.err, c.err, what);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
});

test('random-model --config-only writes a config at the real 9B dimensions that passes validation', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'autoglm-cfg9b-'));
  try {
    const r = cli(['random-model', '-o', dir, '--config-only']);
    assert.equal(r.code, 0, r.err);
    const cfg = JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8'));
    assert.equal(cfg.text_config.vocab_size, 151552);
    assert.equal(cfg.text_config.num_hidden_layers, 40);
    assert.ok(!existsSync(path.join(dir, 'model.safetensors.index.json')));
    // The config (read first) is accepted; the load then stops at the weights that were not written.
    const l = cli(['logits', '-m', dir, '--tokens', '1']);
    assert.equal(l.code, 1);
    assert.match(l.err, /no model\.safetensors or model\.safetensors\.index\.json/);
    const bad = cli(['random-model', '-o', dir, '--config-only', '--vocab', '16']);
    assert.notEqual(bad.code, 0);
    assert.match(bad.err, /--vocab between 32/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
