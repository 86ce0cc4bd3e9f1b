// --quant (weights quantized while a Hugging Face checkpoint loads) and `autoglm eval`, driven as users drive
// them, on the demo model: `logits --quant T` prints exactly what `logits` prints on the GGUF files `autoglm
// quantize --type T` writes; run, bench and serve take the flags; bad types, malformed overrides and --quant on a
// GGUF directory are refused naming the option; eval of a model against itself gives KL 0, top-1 1 and equal
// perplexities, and Q8_0 a small positive KL (the same numbers whether it is quantized at load or read from the
// GGUF file).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startServer } from './server_helpers.mjs';

const BIN = process.env.AUTOGLM_BIN;
const SRC = process.env.AUTOGLM_SOURCE_DIR;
const DEMO = path.join(SRC, 'models/demo');
const TEXT = path.join(SRC, 'bench/eval/phone_agent_text.txt');
// [gMASK] <sop> <|user|> text <|assistant|>
const TOKENS = '1458,1460,1463,39,68,75,259,895,904,1315,100,200,300,400,1464';

let dir;

function cli(args, env = process.env) {
  const r = spawnSync(BIN, args, { encoding: 'utf8', maxBuffer: 64 << 20, timeout: 120000, env });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

function ok(args, env) {
  const r = cli(args, env);
  assert.equal(r.code, 0, `autoglm ${args.join(' ')} failed: ${r.err}`);
  return r.out;
}

// A model directory with the demo's JSON files and the GGUF pair `quantize` writes with `args`.
function ggufDir(name, args) {
  const d = path.join(dir, name);
  mkdirSync(d);
  for (const f of ['config.json', 'generation_config.json', 'tokenizer.json', 'preprocessor_config.json'])
    copyFileSync(path.join(DEMO, f), path.join(d, f));
  ok(['quantize', '-m', DEMO, '-o', path.join(d, 'demo.gguf'), '--mmproj', path.join(d, 'mmproj.gguf'), '-q', ...args]);
  return d;
}

before(() => { dir = mkdtempSync(path.join(tmpdir(), 'autoglm-quant-eval-')); });
after(() => rmSync(dir, { recursive: true, force: true }));

test('logits --quant prints exactly the logits of the GGUF that quantize writes', () => {
  const base = ['logits', '--threads', '1', '--tokens', TOKENS];
  const ref = ok([...base, '-m', DEMO]);
  for (const args of [['--type', 'q8_0'], ['--type', 'q4_k', '--keep', 'lm_head*=q8_0'], ['--type', 'q6_k']]) {
    const quantArgs = ['--quant', args[1]];
    if (args.includes('--keep')) quantArgs.push('--quant-keep', args[3]);
    const atLoad = ok([...base, '-m', DEMO, ...quantArgs]);
    const fromGguf = ok([...base, '-m', ggufDir(args.join('_').replace(/[^a-z0-9_]/gi, ''), args)]);
    assert.equal(atLoad, fromGguf, args.join(' '));
    assert.notEqual(atLoad, ref, `${args.join(' ')} changed nothing`);
  }
});

test('--repack-cache keeps the CPU layout of a GGUF model on disk and maps it back: the same logits', () => {
  // The CPU repacks weights only where it has AVX-512 VNNI (AUTOGLM_CPU_REPACK=1 asks for it on any such CPU).
  const vnni = /avx512_vnni/.test(readFileSync('/proc/cpuinfo', 'utf8'));
  const env = { ...process.env, AUTOGLM_CPU_REPACK: '1' };
  const model = ggufDir('repack_cache_q4_0', ['--type', 'q4_0']);
  const base = ['logits', '--threads', '1', '--tokens', TOKENS, '-m', model];
  const want = ok(base, { ...process.env, AUTOGLM_CPU_REPACK: '0' });
  const cache = path.join(dir, 'repack-cache');
  const first = ok([...base, '--repack-cache', cache], env);
  const kept = existsSync(cache) ? readdirSync(cache).filter((f) => f.endsWith('.r16')) : [];
  const second = ok([...base, '--repack-cache', cache], env);
  assert.equal(first, want);
  assert.equal(second, want);
  if (vnni) assert.ok(kept.length > 0, 'the first load keeps its copies');
  assert.deepEqual(existsSync(cache) ? readdirSync(cache).filter((f) => f.endsWith('.r16')) : [], kept,
                   'the second load maps them, making none');
  // A cache directory that cannot be made is no failure: the load goes on without it.
  const r = cli([...base, '--repack-cache', path.join(DEMO, 'config.json', 'sub')], env);
  assert.equal(r.code, 0, r.err);
  assert.equal(r.out, want);
});

test('bad --quant / --quant-keep and --quant on GGUF weights are refused naming the option', () => {
  const base = ['logits', '-m', DEMO, '--tokens', TOKENS];
  let r = cli([...base, '--quant', 'q3_k']);
  assert.notEqual(r.code, 0);
  assert.match(r.err, /--quant: .*'q3_k'.*q8_0/);
  r = cli([...base, '--quant-keep', 'lm_head*=f16']);
  assert.notEqual(r.code, 0);
  assert.match(r.err, /--quant-keep: .*quantization type/);
  r = cli([...base, '--quant', 'q8_0', '--quant-keep', 'lm_head*']);
  assert.notEqual(r.code, 0);
  assert.match(r.err, /--quant-keep: .*PATTERN=TYPE/);
  const g = ggufDir('refused', ['--type', 'q8_0']);
  r = cli(['logits', '-m', g, '--tokens', TOKENS, '--quant', 'q4_0']);
  assert.notEqual(r.code, 0);
  assert.match(r.err, /GGUF weights/);
  // serve checks the flags before it starts listening (its model loads in the background).
  r = cli(['serve', '-m', DEMO, '--port', '0', '--quant', 'int3']);
  assert.equal(r.code, 2);
  assert.match(r.err, /--quant: .*'int3'/);
});

test('run and bench take --quant; bench reports it with load time and resident memory', () => {
  const out = ok(['run', '-m', DEMO, '--threads', '1', '--tokens', TOKENS, '-n', '4', '--temp', '0', '--quant', 'q4_0']);
  assert.ok(out.length > 0);
  const b = JSON.parse(ok(['bench', '-m', DEMO, '--threads', '1', '--contexts', '16', '--decode-tokens', '2',
                           '--recompute-reps', '0', '--quant', 'i8', '--quant-keep', 'lm_head*=bf16']));
  assert.equal(b.weight_quant, 'i8');
  assert.deepEqual(b.weight_quant_keep, ['lm_head*=bf16']);
  assert.ok(b.rss_after_load_MB > 0 && b.peak_rss_load_MB >= b.rss_after_load_MB, JSON.stringify(b));
  // The quantized model streams fewer weight bytes per token than the BF16 one.
  const plain = JSON.parse(ok(['bench', '-m', DEMO, '--threads', '1', '--contexts', '16', '--decode-tokens', '2',
                               '--recompute-reps', '0']));
  assert.ok(b.model.weight_bytes_per_token < plain.model.weight_bytes_per_token);
});

test('serve --quant q8_0 answers a completion', async () => {
  const srv = await startServer(['--quant', 'q8_0', '--threads', '1']);
  try {
    const r = await fetch(`${srv.base}/v1/completions`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'autoglm-phone-9b', prompt: 'hello', max_tokens: 3, temperature: 0 }),
    });
    assert.equal(r.status, 200, await r.clone().text());
    const body = await r.json();
    assert.equal(body.usage.completion_tokens, 3);
  } finally {
    await srv.stop();
  }
});

test('eval: a model against itself, and Q8_0 at load and from its GGUF file', () => {
  const base = ['eval', '-m', DEMO, '--text', TEXT, '--threads', '1', '--max-tokens', '600', '--ctx', '256', '--json'];
  const self = JSON.parse(ok([...base, '-q', DEMO]));
  assert.equal(self.n_text_tokens, 600);
  assert.equal(self.n_windows, 3);
  assert.equal(self.n_positions, 600);  // every text token is predicted (the [gMASK]<sop> prefix predicts the first)
  assert.equal(self.kl_mean, 0);
  assert.equal(self.kl_p99, 0);
  assert.equal(self.kl_t, 0);
  assert.equal(self.top1_agreement, 1);
  assert.equal(self.ppl_ref, self.ppl_quant);
  assert.ok(self.soft_ce_t > 0);

  const q8 = JSON.parse(ok([...base, '--quant', 'q8_0']));
  assert.ok(q8.kl_mean > 0 && q8.kl_mean < 0.02, `kl_mean ${q8.kl_mean}`);
  assert.ok(q8.kl_p99 >= q8.kl_mean && q8.kl_max >= q8.kl_p99);
  assert.ok(q8.top1_agreement > 0.9 && q8.top1_agreement < 1, `top-1 ${q8.top1_agreement}`);
  assert.ok(Math.abs(q8.ppl_quant / q8.ppl_ref - 1) < 0.02, `ppl ${q8.ppl_ref} vs ${q8.ppl_quant}`);
  assert.ok(q8.kl_t > 0 && q8.kl_t < q8.kl_mean, 'softer distributions move less');
  assert.ok(Math.abs(q8.soft_ce_t_times_t2 / (q8.soft_ce_t * 25) - 1) < 1e-12);

  // The lone text .gguf quantize writes (no mmproj beside it): the same numbers as quantizing at load.
  const g = ggufDir('eval-q8', ['--type', 'q8_0']);
  const fromFile = JSON.parse(ok([...base, '-q', path.join(g, 'demo.gguf')]));
  for (const k of ['kl_mean', 'kl_p99', 'top1_agreement', 'ppl_quant', 'soft_ce_t'])
    assert.equal(fromFile[k], q8[k], k);

  // The table form names every measure.
  const table = ok(base.filter((a) => a !== '--json').concat(['--quant', 'q4_0']));
  for (const label of ['KL(ref || quant)', 'top-1 agreement', 'perplexity', 'soft CE at T=5', 'KL at T=5'])
    assert.ok(table.includes(label), `${label} missing from:\n${table}`);
});

test('eval refuses unclear input', () => {
  const base = ['eval', '-m', DEMO, '--text', TEXT];
  let r = cli(base);
  assert.notEqual(r.code, 0);
  assert.match(r.err, /either -q .* or --quant/);
  r = cli([...base, '-q', DEMO, '--quant', 'q8_0']);
  assert.notEqual(r.code, 0);
  r = cli([...base, '--quant', 'q8_0', '--temperature', '0']);
  assert.notEqual(r.code, 0);
  assert.match(r.err, /--temperature/);
  r = cli(['eval', '-m', DEMO, '--text', path.join(dir, 'missing.txt'), '--quant', 'q8_0']);
  assert.notEqual(r.code, 0);
  assert.match(r.err, /missing\.txt/);
  // A reference without a tokenizer says how to give one.
  const noTok = path.join(dir, 'notok');
  mkdirSync(noTok);
  for (const f of ['config.json', 'model.safetensors']) copyFileSync(path.join(DEMO, f), path.join(noTok, f));
  r = cli(['eval', '-m', noTok, '--text', TEXT, '--quant', 'q8_0']);
  assert.notEqual(r.code, 0);
  assert.match(r.err, /--tokenizer/);
  const withTok = JSON.parse(ok(['eval', '-m', noTok, '--tokenizer', DEMO, '--text', TEXT, '--quant', 'q8_0',
                                 '--max-tokens', '64', '--threads', '1', '--json']));
  assert.equal(withTok.n_positions, 64);
});
