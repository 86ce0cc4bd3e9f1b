// GGUF compatibility with llama.cpp, through node-llama-cpp 3.21.1 (its prebuilt CPU build of llama.cpp, the
// peer users run): the text GGUF `autoglm quantize` writes for the demo model loads there with the metadata,
// tensor layout and tokenizer llama.cpp expects, and greedy decoding in llama.cpp on the F32 file picks, token for
// token, what autoglm picks on the Hugging Face checkpoint (the same weights: BF16 -> F32 is exact). That is the
// end-to-end proof of the layout, the q/k permutation for llama.cpp's M-RoPE included: a wrong permutation or
// name map changes the logits, not just their last bits. autoglm's side is `autoglm logits` on llama.cpp's own
// greedy sequence (teacher forcing): its argmax at every position must be llama.cpp's next token, which is the
// same as both engines generating the same sequence. autoglm also runs from the GGUF files themselves (a model
// directory with *.gguf instead of safetensors), on text and on an image through the mmproj file.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { getLlama, LlamaLogLevel } from 'node-llama-cpp';

const BIN = process.env.AUTOGLM_BIN;
const SRC = process.env.AUTOGLM_SOURCE_DIR;
const DEMO = path.join(SRC, 'models/demo');
// GLM-4 chat framing of the demo vocabulary: [gMASK] <sop> <|user|> ... <|assistant|>.
const GMASK = 1458, SOP = 1460, USER = 1463, ASSISTANT = 1464;
const GGML = { F32: 0, F16: 1, Q4_0: 2, Q4_1: 3, Q5_0: 6, Q5_1: 7, Q8_0: 8, BF16: 30 };

let llama, dir;

// autoglm's CPU GEMM in exact F32 (the BF16 prefill GEMM rounds x to bf16, kernels/cpu/gemm_bf16.h): the checks
// below compare logits against llama.cpp's F32 arithmetic on the same weights.
const EXACT_GEMM = { ...process.env, AUTOGLM_CPU_BF16_GEMM: '0' };

function cli(args, input) {
  const r = spawnSync(BIN, args, { input, encoding: 'utf8', maxBuffer: 64 << 20, env: EXACT_GEMM });
  assert.equal(r.status, 0, `autoglm ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}

function quantize(name, args) {
  const out = path.join(dir, name);
  cli(['quantize', '-m', DEMO, '-o', out, '-q', ...args]);
  return out;
}

// A model directory with the demo's JSON and tokenizer files and GGUF weights (text + mmproj) instead of safetensors.
function ggufModelDir(name, args) {
  const d = path.join(dir, name);
  mkdirSync(d);
  for (const f of ['config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json',
                   'chat_template.jinja', 'preprocessor_config.json'])
    copyFileSync(path.join(DEMO, f), path.join(d, f));
  cli(['quantize', '-m', DEMO, '-o', path.join(d, 'demo.gguf'), '--mmproj', path.join(d, 'mmproj-demo.gguf'), '-q', ...args]);
  return d;
}

function logits(modelDir, ids, images = []) {
  const args = ['logits', '-m', modelDir, '--threads', '1', '--tokens', ids.join(',')];
  for (const img of images) args.push('--image', img);
  return JSON.parse(cli(args));
}

function tokenize(text) {
  return JSON.parse(cli(['tokenize', '-m', DEMO, '--no-special'], text));
}

async function greedy(modelPath, prompt, n) {
  const model = await llama.loadModel({ modelPath });
  // One thread: llama.cpp's threads spin at every barrier, and on a loaded 2-core machine 32 tokens of the demo
  // model took 15 s with 2 threads against 15 ms with 1.
  const context = await model.createContext({ contextSize: 512, threads: 1 });
  const out = [];
  try {
    for await (const token of context.getSequence().evaluate(prompt, { temperature: 0 })) {
      out.push(token);
      if (out.length >= n) break;
    }
  } finally {
    await context.dispose();
    await model.dispose();
  }
  return out;
}

before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'autoglm-gguf-'));
  llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error });
});

after(async () => {
  await llama?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

test('llama.cpp reads the text GGUF autoglm writes: metadata, tensor layout and tokenizer', async () => {
  const file = quantize('demo-f16.gguf', ['--type', 'f16']);
  const model = await llama.loadModel({ modelPath: file });
  try {
    const meta = model.fileInfo.metadata;
    assert.equal(meta.general.architecture, 'glm4');
    assert.equal(meta.glm4.block_count, 2);
    assert.equal(meta.glm4.embedding_length, 128);
    assert.equal(meta.glm4.attention.head_count_kv, 2);
    assert.deepEqual(Array.from(meta.glm4.rope.dimension_sections), [2, 3, 3, 0]);
    assert.equal(meta.glm4.rope.dimension_count, 16);
    assert.equal(meta.tokenizer.ggml.pre, 'glm4');
    const byName = new Map(model.fileInfo.tensorInfo.map((t) => [t.name, t]));
    assert.equal(byName.size, 3 + 2 * 13);
    assert.deepEqual(byName.get('token_embd.weight').dimensions, [128, 1503]);
    assert.deepEqual(byName.get('blk.1.ffn_up.weight').dimensions, [128, 360]);  // fused gate_up
    assert.equal(byName.get('blk.1.ffn_up.weight').ggmlType, GGML.F16);
    assert.equal(byName.get('blk.1.post_ffw_norm.weight').ggmlType, GGML.F32);
    assert.equal(model.tokens.eos, 1456);
    assert.equal(model.fileInsights.totalLayers, 3);  // 2 blocks + the output layer
    // llama.cpp's tokenizer (gpt2 BPE with the glm4 pre-tokenizer, from our metadata) splits text as autoglm's
    // tokenizer.json does, Chinese and whitespace runs included.
    for (const text of ["Hello world, what's in this screenshot?", '打开微信，给张三发消息 123456 !!',
                        "  spaces\n\nnew lines\t tabs ok'll"])
      assert.deepEqual(Array.from(model.tokenize(text, false)), tokenize(text), text);
  } finally {
    await model.dispose();
  }
});

test('llama.cpp on the F32 GGUF and autoglm on the checkpoint choose the same greedy tokens', async () => {
  const file = quantize('demo-f32.gguf', ['--type', 'f32']);
  const prompt = [GMASK, SOP, USER, ...tokenize('Open the settings app and turn on dark mode.'), ASSISTANT];
  const n = 32;
  const theirs = await greedy(file, prompt, n);
  assert.equal(theirs.length, n);
  // autoglm's argmax after the prompt and after each of llama.cpp's tokens: the greedy choice at every step.
  const ids = [...prompt, ...theirs.slice(0, n - 1)];
  const r = JSON.parse(cli(['logits', '-m', DEMO, '--threads', '1', '--tokens', ids.join(',')]));
  const ours = r.argmax.slice(prompt.length - 1);
  assert.deepEqual(ours, theirs);
  assert.ok(new Set(theirs).size > 4, `a degenerate sequence proves little: ${theirs}`);
});

test('quantized and mixed-precision GGUFs load in llama.cpp with the types asked for', async () => {
  const prompt = [GMASK, SOP, USER, ...tokenize('hello'), ASSISTANT];
  const cases = [
    { args: ['--type', 'q8_0'], q: GGML.Q8_0, embd: GGML.Q8_0 },
    // Rows of 128: a k-quant needs 256, so the matrices fall back as llama.cpp's quantizer does (Q4_K -> Q5_0,
    // Q5_K -> Q5_1).
    { args: ['--type', 'q4_k'], q: GGML.Q5_0, embd: GGML.Q5_0 },
    { args: ['--type', 'q5_k'], q: GGML.Q5_1, embd: GGML.Q5_1 },
    { args: ['--type', 'q4_1'], q: GGML.Q4_1, embd: GGML.Q4_1 },
    { args: ['--type', 'bf16'], q: GGML.BF16, embd: GGML.BF16 },
    { args: ['--type', 'q4_0', '--keep', '*embed_tokens*=f16', '--keep', '*.layers.1.*=q8_0'], q: GGML.Q4_0, embd: GGML.F16 },
  ];
  for (const c of cases) {
    const file = quantize(`demo-${c.args.join('_').replace(/[^a-z0-9_]/gi, '')}.gguf`, c.args);
    const model = await llama.loadModel({ modelPath: file });
    const types = new Map(model.fileInfo.tensorInfo.map((t) => [t.name, t.ggmlType]));
    await model.dispose();
    assert.equal(types.get('blk.0.attn_q.weight'), c.q, c.args.join(' '));
    assert.equal(types.get('token_embd.weight'), c.embd, c.args.join(' '));
    assert.equal(types.get('blk.0.attn_norm.weight'), GGML.F32);
    if (c.args.includes('--keep')) assert.equal(types.get('blk.1.attn_q.weight'), GGML.Q8_0);
    // ffn_down rows hold 180 elements: no 32-block type fits, so every quantized file stores it in F16.
    if (c.q !== GGML.BF16) assert.equal(types.get('blk.0.ffn_down.weight'), GGML.F16);
    const tokens = await greedy(file, prompt, 8);
    assert.equal(tokens.length, 8);
    for (const t of tokens) assert.ok(t >= 0 && t < 1503);
  }
});

// The 32-element fallback types, layout included: llama.cpp generates greedily from autoglm's Q5_0 / Q5_1 file and
// autoglm, run on the same file with llama.cpp's tokens (teacher forcing), picks the same next token. The two
// engines quantize activations differently (ggml: f16 scale per 32; autoglm: f32 scale, quant_linear.h), so a
// near-tie may go either way (23 of 24 agree today); a wrong bit order in the blocks would leave the agreement near
// chance (1 in 1503).
test('autoglm and llama.cpp decode the same Q5_0 and Q5_1 files alike', async () => {
  const prompt = [GMASK, SOP, USER, ...tokenize('Open the settings app and turn on dark mode.'), ASSISTANT];
  for (const type of ['q5_0', 'q5_1']) {
    const d = ggufModelDir(`gguf-${type}`, ['--type', type]);
    const theirs = await greedy(path.join(d, 'demo.gguf'), prompt, 24);
    const ours = logits(d, [...prompt, ...theirs.slice(0, -1)]).argmax.slice(prompt.length - 1);
    const same = ours.filter((t, i) => t === theirs[i]).length;
    assert.ok(same >= 20, `${type}: ${same} of 24 greedy tokens agree (llama.cpp ${theirs}, autoglm ${ours})`);
    assert.ok(new Set(theirs).size > 4, `a degenerate sequence proves little: ${theirs}`);
  }
});

test('autoglm runs from its GGUF files and picks the same greedy tokens as llama.cpp on the same file', async () => {
  const prompt = [GMASK, SOP, USER, ...tokenize('Open the settings app and turn on dark mode.'), ASSISTANT];
  const d = ggufModelDir('gguf-f32', ['--type', 'f32']);
  const theirs = await greedy(path.join(d, 'demo.gguf'), prompt, 32);
  const fromGguf = logits(d, [...prompt, ...theirs.slice(0, -1)]);
  assert.deepEqual(fromGguf.argmax.slice(prompt.length - 1), theirs);
  // And the same logits as from the checkpoint (F32 weights equal to the BF16 ones; only summation order differs).
  const fromHf = logits(DEMO, [...prompt, ...theirs.slice(0, -1)]);
  let worst = 0;
  for (let i = 0; i < fromHf.logits_last.length; i++)
    worst = Math.max(worst, Math.abs(fromHf.logits_last[i] - fromGguf.logits_last[i]));
  assert.ok(worst < 1e-3, `largest logit difference ${worst}`);
});

test('an image through the GGUF mmproj file gives the checkpoint\'s logits', () => {
  const IMAGE = 1470, BEGIN_IMAGE = 1466, END_IMAGE = 1467;
  const png = path.join(SRC, 'tests/fixtures/ref/image_between_text_img0.png');
  const ids = [GMASK, SOP, USER, BEGIN_IMAGE, IMAGE, END_IMAGE, ...tokenize('What is on the screen?'), ASSISTANT];
  const d = ggufModelDir('gguf-f32-vision', ['--type', 'f32']);
  const fromGguf = logits(d, ids, [png]);
  const fromHf = logits(DEMO, ids, [png]);
  assert.equal(fromGguf.n_positions, fromHf.n_positions);
  assert.ok(fromHf.n_positions > ids.length, 'the image expands to several positions');
  assert.deepEqual(fromGguf.argmax, fromHf.argmax);
  let worst = 0;
  for (let i = 0; i < fromHf.logits_last.length; i++)
    worst = Math.max(worst, Math.abs(fromHf.logits_last[i] - fromGguf.logits_last[i]));
  assert.ok(worst < 1e-3, `largest logit difference ${worst}`);
});
