// server.test.mjs: `autoglm serve` on the demo model, driven by the clients people use — the official `openai`
// SDK, LangChain's ChatOpenAI (the deployment guide's snippet), the Open-AutoGLM request shape — and raw HTTP for
// the error paths, disconnects and concurrency. Exact usage and the OpenAI streaming invariants are asserted.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';
import { ChatOpenAI } from '@langchain/openai';
import { HumanMessage, SystemMessage } from '@langchain/core/messages';
import { startServer, rawRequest, sseData, openStream, pngDataUri, makePng, MODEL, BIN, SRC } from './server_helpers.mjs';

const MAX_LEN = 512;

// In streaming mode LangChain estimates token counts with tiktoken files fetched from tiktoken.pages.dev, retrying
// with backoff for minutes when offline. Tests run offline: fail that one host at once with an error carrying
// status 404, which LangChain does not retry and falls back from. Everything else goes to the real fetch.
const realFetch = globalThis.fetch;
globalThis.fetch = (input, init) => {
  const url = typeof input === 'string' ? input : input.url ?? String(input);
  if (url.includes('tiktoken.pages.dev')) return Promise.reject(Object.assign(new Error('offline test run'), { status: 404 }));
  return realFetch(input, init);
};
// ...and it reports that fallback with a stack trace per call: keep the test output readable.
const realWarn = console.warn;
console.warn = (...a) => { if (!String(a[0]).startsWith('Failed to calculate number of tokens')) realWarn(...a); };
let srv;
let client;

async function tokenizeCount(messages, extra = {}) {
  const r = await rawRequest(srv.base, { path: '/tokenize', body: { model: MODEL, messages, ...extra } });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.count, r.json.tokens.length);
  return r.json.count;
}

// Collects an openai SDK stream and checks the OpenAI chunk invariants; returns {chunks, content, usage, finish}.
async function collectStream(stream, n = 1) {
  const chunks = [];
  for await (const c of stream) chunks.push(c);
  assert.ok(chunks.length >= 2);
  const id = chunks[0].id;
  const content = Array(n).fill('');
  const reasoning = Array(n).fill('');
  const finish = Array(n).fill(null);
  const roleSeen = Array(n).fill(false);
  let usage = null;
  for (const [k, c] of chunks.entries()) {
    assert.equal(c.id, id, 'one id for all chunks');
    assert.equal(c.object, 'chat.completion.chunk');
    assert.equal(c.model, MODEL);
    if (c.usage) {
      assert.equal(k, chunks.length - 1, 'the usage chunk is last');
      assert.deepEqual(c.choices, []);
      usage = c.usage;
      continue;
    }
    for (const ch of c.choices) {
      const i = ch.index;
      assert.equal(finish[i], null, 'nothing after a choice finished');
      if (ch.delta.role !== undefined) {
        assert.equal(roleSeen[i], false, 'role only in the first chunk of a choice');
        assert.equal(ch.delta.role, 'assistant');
      } else {
        assert.ok(roleSeen[i], 'role chunk comes first');
      }
      roleSeen[i] = true;
      content[i] += ch.delta.content ?? '';
      reasoning[i] += ch.delta.reasoning_content ?? '';
      if (ch.finish_reason !== null) finish[i] = ch.finish_reason;
    }
  }
  for (let i = 0; i < n; i++) assert.ok(['stop', 'length'].includes(finish[i]), `choice ${i} finished: ${finish[i]}`);
  return { chunks, content, reasoning, usage, finish };
}

function simpleMessages(text = 'Hello, who are you?') {
  return [{ role: 'system', content: 'You are a helpful assistant.' }, { role: 'user', content: text }];
}

before(async () => {
  srv = await startServer(['--max-model-len', String(MAX_LEN), '--max-num-seqs', '16', '--max-waiting', '1024',
    '--max-body-bytes', String(4 << 20), '--shutdown-grace', '10']);
  client = new OpenAI({ baseURL: `${srv.base}/v1`, apiKey: 'EMPTY', maxRetries: 0 });
});

after(async () => {
  if (!srv) return;
  const { code } = await srv.stop('SIGTERM');
  assert.equal(code, 0, `graceful shutdown exits 0:\n${srv.log().slice(-3000)}`);
});

describe('info endpoints', () => {
  test('/health, /v1/models, /metrics', async () => {
    const h = await rawRequest(srv.base, { method: 'GET', path: '/health' });
    assert.equal(h.status, 200);
    assert.deepEqual(h.json, { status: 'ok', model: MODEL });
    // Anything seen before ready was a 503 with an OpenAI error body.
    for (const s of srv.states.slice(0, -1)) {
      assert.equal(s.status, 503);
      assert.equal(typeof s.body.error.message, 'string');
    }
    const models = await client.models.list();
    assert.deepEqual(models.data.map((m) => m.id), [MODEL]);
    const m = await rawRequest(srv.base, { method: 'GET', path: '/metrics' });
    assert.equal(m.status, 200);
    assert.match(m.headers['content-type'], /^text\/plain/);
    assert.match(m.text, /# TYPE autoglm_time_to_first_token_seconds histogram/);
    assert.match(m.text, /autoglm_num_requests_running\{model_name="autoglm-phone-9b"\} \d+/);
  });
});

describe('openai SDK', () => {
  test('non-streaming: exact usage, message shape', async () => {
    const messages = simpleMessages();
    const r = await client.chat.completions.create({ model: MODEL, messages, max_tokens: 12, temperature: 0, logprobs: true });
    assert.equal(r.object, 'chat.completion');
    assert.match(r.id, /^chatcmpl-/);
    assert.equal(r.choices.length, 1);
    const ch = r.choices[0];
    assert.equal(ch.message.role, 'assistant');
    assert.equal(typeof ch.message.content, 'string');
    assert.ok(['stop', 'length'].includes(ch.finish_reason));
    assert.equal(r.usage.prompt_tokens, await tokenizeCount(messages));
    assert.equal(r.usage.completion_tokens, ch.logprobs.content.length, 'one logprob entry per generated token');
    if (ch.finish_reason === 'length') assert.equal(r.usage.completion_tokens, 12);
    assert.ok(r.usage.completion_tokens <= 12);
    assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
    assert.equal(typeof r.usage.prompt_tokens_details.cached_tokens, 'number');
  });

  test('streaming: invariants, include_usage, same result as non-streaming (greedy)', async () => {
    const messages = simpleMessages('Tell me a story.');
    const plain = await client.chat.completions.create({ model: MODEL, messages, max_tokens: 20, temperature: 0 });
    const stream = await client.chat.completions.create({ model: MODEL, messages, max_tokens: 20, temperature: 0, stream: true,
      stream_options: { include_usage: true } });
    const s = await collectStream(stream);
    assert.ok(s.usage, 'usage chunk present');
    assert.equal(s.content[0], plain.choices[0].message.content);
    assert.equal(s.finish[0], plain.choices[0].finish_reason);
    assert.equal(s.usage.prompt_tokens, plain.usage.prompt_tokens);
    assert.equal(s.usage.completion_tokens, plain.usage.completion_tokens);
    assert.equal(s.usage.total_tokens, plain.usage.total_tokens);
  });

  test('raw SSE framing: data lines, [DONE] last', async () => {
    const r = await rawRequest(srv.base, { body: { model: MODEL, messages: simpleMessages(), max_tokens: 5, stream: true } });
    assert.equal(r.status, 200);
    assert.match(r.headers['content-type'], /^text\/event-stream/);
    const events = sseData(r.text);
    assert.equal(events.at(-1), '[DONE]');
    assert.equal(events.filter((e) => e === '[DONE]').length, 1);
    for (const e of events.slice(0, -1)) assert.equal(JSON.parse(e).object, 'chat.completion.chunk');
    assert.ok(r.text.split('\n\n').filter(Boolean).every((e) => e.startsWith('data: ')));
  });

  test('n=2 with logprobs: two choices, usage sums both', async () => {
    const r = await client.chat.completions.create({ model: MODEL, messages: simpleMessages(), n: 2, max_tokens: 8,
      temperature: 1, seed: 5, logprobs: true, top_logprobs: 3 });
    assert.deepEqual(r.choices.map((c) => c.index), [0, 1]);
    const total = r.choices.reduce((a, c) => a + c.logprobs.content.length, 0);
    assert.equal(r.usage.completion_tokens, total);
    for (const c of r.choices) {
      for (const e of c.logprobs.content) {
        assert.equal(typeof e.token, 'string');
        assert.ok(e.logprob <= 0);
        // Ids past the tokenizer's vocabulary (padding rows of the embedding) are empty text with no bytes.
        assert.ok(Array.isArray(e.bytes) && (e.bytes.length > 0) === (e.token.length > 0));
        assert.equal(e.top_logprobs.length, 3);
        for (const t of e.top_logprobs) assert.ok(t.logprob <= 0 && Array.isArray(t.bytes));
        // The top alternatives are sorted, and a valid-UTF-8 token's text is its bytes.
        for (let k = 1; k < 3; k++) assert.ok(e.top_logprobs[k - 1].logprob >= e.top_logprobs[k].logprob);
        const dec = Buffer.from(e.bytes).toString('utf8');
        if (!dec.includes('\ufffd')) assert.equal(e.token, dec);
      }
    }
    const s = await collectStream(await client.chat.completions.create({ model: MODEL, messages: simpleMessages(), n: 2,
      max_tokens: 6, stream: true, stream_options: { include_usage: true } }), 2);
    assert.ok(s.usage.completion_tokens >= 2 && s.usage.completion_tokens <= 12);
  });

  test('seed makes sampling reproducible', async () => {
    const req = { model: MODEL, messages: simpleMessages('Pick a random word.'), max_tokens: 16, temperature: 1.0, top_p: 1, seed: 1234 };
    const a = await client.chat.completions.create(req);
    const b = await client.chat.completions.create(req);
    assert.equal(a.choices[0].message.content, b.choices[0].message.content);
    assert.equal(a.usage.completion_tokens, b.usage.completion_tokens);
  });

  test('stop strings truncate and are never leaked (streaming too)', async () => {
    const base = { model: MODEL, messages: simpleMessages('Count to ten.'), max_tokens: 40, temperature: 0, ignore_eos: true };
    const full = (await client.chat.completions.create(base)).choices[0].message.content;
    const chars = [...full];
    assert.ok(chars.length >= 8, `need some text to cut: ${JSON.stringify(full)}`);
    const stop = chars.slice(4, 6).join('');
    const expected = full.slice(0, full.indexOf(stop));
    const r = await client.chat.completions.create({ ...base, stop: [stop, 'never-appears-xyz'] });
    assert.equal(r.choices[0].message.content, expected);
    assert.equal(r.choices[0].finish_reason, 'stop');
    const s = await collectStream(await client.chat.completions.create({ ...base, stop, stream: true }));
    assert.equal(s.content[0], expected);
    assert.equal(s.finish[0], 'stop');
  });

  test('legacy completions, tokenize/detokenize round trip', async () => {
    const r = await client.completions.create({ model: MODEL, prompt: 'Once upon a time', max_tokens: 6, temperature: 0, logprobs: 2 });
    assert.equal(r.object, 'text_completion');
    assert.equal(r.usage.completion_tokens, r.choices[0].logprobs.tokens.length);
    const t = await rawRequest(srv.base, { path: '/tokenize', body: { model: MODEL, prompt: 'Once upon a time', add_special_tokens: false } });
    assert.equal(t.status, 200);
    const d = await rawRequest(srv.base, { path: '/detokenize', body: { model: MODEL, tokens: t.json.tokens } });
    assert.equal(d.json.prompt, 'Once upon a time');
    const e = await client.completions.create({ model: MODEL, prompt: t.json.tokens, max_tokens: 3, echo: true, temperature: 0 });
    assert.ok(e.choices[0].text.startsWith('Once upon a time'));
  });
});

describe('LangChain ChatOpenAI', () => {
  const make = (opts = {}) => new ChatOpenAI({ model: MODEL, temperature: 0.5, apiKey: 'EMPTY', maxTokens: 24,
    configuration: { baseURL: `${srv.base}/v1` }, maxRetries: 0, ...opts });

  test('the deployment guide snippet (section 4.1): streaming with enable_thinking + return_reasoning', async () => {
    const chat = make({ streaming: true, modelKwargs: { enable_thinking: true, return_reasoning: true } });
    const response = await chat.invoke('你是谁?');
    assert.equal(typeof response.content, 'string');
    // The same through the non-streaming path.
    const plain = await make({ modelKwargs: { enable_thinking: false, return_reasoning: true } }).invoke('你是谁?');
    assert.equal(typeof plain.content, 'string');
    assert.ok(plain.response_metadata.tokenUsage?.promptTokens > 0 || plain.usage_metadata?.input_tokens > 0);
  });

  test('streaming chunks and an image message', async () => {
    const chat = make();
    let text = '';
    let n = 0;
    for await (const c of await chat.stream('Say something.')) { text += c.content; n++; }
    assert.ok(n >= 1);
    const img = await chat.invoke([new SystemMessage('You are a phone agent.'),
      new HumanMessage({ content: [{ type: 'image_url', image_url: { url: pngDataUri(64, 48) } }, { type: 'text', text: 'What is on the screen?' }] })]);
    assert.equal(typeof img.content, 'string');
  });
});

describe('Open-AutoGLM request shape', () => {
  test('system + [image_url PNG, text], streamed, temperature 0, top_p 0.85, frequency_penalty 0.2', async () => {
    const messages = [
      { role: 'system', content: '今天的日期是: 2025年12月10日 星期三\n你是一个智能体分析专家…' },
      { role: 'user', content: [{ type: 'image_url', image_url: { url: pngDataUri(108, 240) } },
        { type: 'text', text: '打开微信\n\n{"current_app": "System Home"}' }] },
    ];
    const stream = await client.chat.completions.create({ model: MODEL, messages, max_tokens: 3000, temperature: 0.0,
      top_p: 0.85, frequency_penalty: 0.2, stream: true, stream_options: { include_usage: true } });
    const s = await collectStream(stream);
    assert.equal(s.usage.prompt_tokens, await tokenizeCount(messages));
    assert.ok(s.usage.prompt_tokens + s.usage.completion_tokens <= MAX_LEN, 'max_tokens capped by the context');
    // Greedy: the same request again gives the same answer (the prefix cache must not change results).
    const again = await client.chat.completions.create({ model: MODEL, messages, max_tokens: 3000, temperature: 0.0,
      top_p: 0.85, frequency_penalty: 0.2 });
    assert.equal(again.choices[0].message.content, s.content[0]);
    assert.equal(again.usage.completion_tokens, s.usage.completion_tokens);
  });

  test('extra_body image + query (guide section 4.2)', async () => {
    const r = await rawRequest(srv.base, { body: { model: MODEL, messages: [{ role: 'user', content: 'hi' }], max_tokens: 4,
      image: makePng(32, 32).toString('base64'), query: '这张图里有什么?' } });
    assert.equal(r.status, 200, r.text);
    const withImage = r.json.usage.prompt_tokens;
    const without = await rawRequest(srv.base, { body: { model: MODEL, messages: [{ role: 'user', content: 'hi' }], max_tokens: 4 } });
    assert.ok(withImage > without.json.usage.prompt_tokens, 'the image adds placeholder tokens');
  });
});

describe('errors (raw HTTP)', () => {
  const expectError = async (req, status, { type, param, code } = {}) => {
    const r = await rawRequest(srv.base, req);
    assert.equal(r.status, status, r.text);
    assert.equal(typeof r.json?.error?.message, 'string', r.text);
    if (type) assert.equal(r.json.error.type, type);
    if (param !== undefined) assert.equal(r.json.error.param, param);
    if (code !== undefined) assert.equal(r.json.error.code, code);
    return r;
  };
  const msgs = simpleMessages();

  test('malformed JSON, wrong types, bad content', async () => {
    await expectError({ body: '{"model": "x", "messages": [' }, 400, { type: 'invalid_request_error' });
    await expectError({ body: '' }, 400);
    await expectError({ body: { messages: msgs, temperature: 'hot' } }, 400, { param: 'temperature' });
    await expectError({ body: { messages: msgs, max_tokens: -3 } }, 400, { param: 'max_tokens' });
    await expectError({ body: { messages: msgs, stop: 7 } }, 400, { param: 'stop' });
    await expectError({ body: { messages: 'hi' } }, 400, { param: 'messages' });
    await expectError({ body: { messages: [{ role: 'user', content: [{ type: 'input_audio', input_audio: { data: 'AAAA', format: 'wav' } }] }] } },
      400, { param: 'messages[0].content[0].type' });
  });

  test('images: bad base64, unsupported format', async () => {
    const withUrl = (url) => ({ body: { model: MODEL, max_tokens: 2, messages: [{ role: 'user', content: [
      { type: 'image_url', image_url: { url } }, { type: 'text', text: 'what?' }] }] } });
    const r1 = await expectError(withUrl('data:image/png;base64,@@@not-base64@@@'), 400, { type: 'invalid_request_error' });
    assert.match(r1.json.error.param ?? '', /messages\[0\]\.content\[0\]/);
    const gif = Buffer.from('R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7', 'base64').toString('base64');
    await expectError(withUrl(`data:image/gif;base64,${gif}`), 400, { type: 'invalid_request_error' });
    await expectError(withUrl(`data:image/png;base64,${Buffer.from('definitely not a png').toString('base64')}`), 400);
    await expectError({ body: { model: MODEL, messages: msgs, image: '%%%' } }, 400);
  });

  test('oversized body → 413, unknown model → 404, routes → 404/405', async () => {
    await expectError({ body: { model: MODEL, messages: simpleMessages('x'.repeat(5 << 20)) } }, 413);
    await expectError({ body: { model: 'gpt-4o', messages: msgs } }, 404, { code: 'model_not_found', param: 'model' });
    await expectError({ method: 'GET', path: '/v1/nothing-here' }, 404);
    await expectError({ method: 'GET', path: '/v1/chat/completions' }, 405);
    // Still serving after all of that.
    const ok = await client.chat.completions.create({ model: MODEL, messages: msgs, max_tokens: 2 });
    assert.equal(ok.choices.length, 1);
  });
});

describe('robustness', () => {
  test('client disconnect mid-stream cancels it; the server keeps serving', async () => {
    const metric = async (name) => {
      const m = await rawRequest(srv.base, { method: 'GET', path: '/metrics' });
      const line = m.text.split('\n').find((l) => l.startsWith(name));
      return Number(line.split(' ').at(-1));
    };
    const cancelledBefore = await metric('autoglm_request_success_total{model_name="autoglm-phone-9b",finished_reason="cancelled"}');
    const s = await openStream(srv.base, { model: MODEL, messages: simpleMessages(), max_tokens: 900, ignore_eos: true, stream: true });
    assert.equal(s.status, 200);
    s.req.destroy();
    // The engine sees the cancel: the request is counted as cancelled and nothing stays running.
    for (let i = 0; i < 200; i++) {
      const c = await metric('autoglm_request_success_total{model_name="autoglm-phone-9b",finished_reason="cancelled"}');
      if (c > cancelledBefore && (await metric('autoglm_num_requests_running')) === 0) break;
      await new Promise((r) => setTimeout(r, 25));
    }
    assert.ok(await metric('autoglm_request_success_total{model_name="autoglm-phone-9b",finished_reason="cancelled"}') > cancelledBefore);
    const r = await client.chat.completions.create({ model: MODEL, messages: simpleMessages(), max_tokens: 4 });
    assert.equal(r.choices.length, 1);
  });

  test('64 concurrent streams, each with exact usage', async () => {
    const messages = (i) => simpleMessages(`Request number ${i}: say something.`);
    const runs = Array.from({ length: 64 }, async (_, i) => {
      const r = await rawRequest(srv.base, { body: { model: MODEL, messages: messages(i), max_tokens: 8 + (i % 8), stream: true,
        logprobs: true, stream_options: { include_usage: true } } });
      assert.equal(r.status, 200);
      const events = sseData(r.text);
      assert.equal(events.at(-1), '[DONE]');
      const chunks = events.slice(0, -1).map((e) => JSON.parse(e));
      const usage = chunks.at(-1).usage;
      const nTokens = chunks.reduce((a, c) => a + (c.choices[0]?.logprobs?.content?.length ?? 0), 0);
      assert.equal(usage.completion_tokens, nTokens, `request ${i}`);
      assert.ok(nTokens <= 8 + (i % 8));
      assert.equal(new Set(chunks.map((c) => c.id)).size, 1);
      return { i, usage };
    });
    const results = await Promise.all(runs);
    for (const { i, usage } of results.slice(0, 4)) assert.equal(usage.prompt_tokens, await tokenizeCount(messages(i)));
  });

  test('256 open streams: /health and a new request still answer', async () => {
    const streams = await Promise.all(Array.from({ length: 256 }, () =>
      openStream(srv.base, { model: MODEL, messages: simpleMessages(), max_tokens: 400, ignore_eos: true, stream: true })));
    try {
      assert.ok(streams.every((s) => s.status === 200));
      const h = await rawRequest(srv.base, { method: 'GET', path: '/health' });
      assert.equal(h.status, 200);
      const m = await rawRequest(srv.base, { method: 'GET', path: '/v1/models' });
      assert.equal(m.status, 200);
    } finally {
      for (const s of streams) s.req.destroy();
    }
    const r = await client.chat.completions.create({ model: MODEL, messages: simpleMessages(), max_tokens: 4 });
    assert.equal(r.choices.length, 1);
  });
});

describe('API key and graceful shutdown (second server)', () => {
  test('--api-key: 401 without or with a wrong key, /health open; SIGTERM finishes in-flight streams', async () => {
    const s2 = await startServer(['--api-key', 'sekret-key', '--max-model-len', '512', '--shutdown-grace', '20', '--cors-origin', '*']);
    try {
      const body = { model: MODEL, messages: simpleMessages(), max_tokens: 2 };
      const none = await rawRequest(s2.base, { body });
      assert.equal(none.status, 401);
      assert.equal(none.json.error.type, 'authentication_error');
      const wrong = await rawRequest(s2.base, { body, headers: { authorization: 'Bearer sekret-kex' } });
      assert.equal(wrong.status, 401);
      assert.equal((await rawRequest(s2.base, { method: 'GET', path: '/v1/models' })).status, 401);
      assert.equal((await rawRequest(s2.base, { method: 'GET', path: '/health' })).status, 200);
      const good = new OpenAI({ baseURL: `${s2.base}/v1`, apiKey: 'sekret-key', maxRetries: 0 });
      const r = await good.chat.completions.create(body);
      assert.equal(r.choices.length, 1);
      await assert.rejects(new OpenAI({ baseURL: `${s2.base}/v1`, apiKey: 'nope', maxRetries: 0 }).chat.completions.create(body),
        (e) => e.status === 401);
      // CORS preflight and headers.
      const pre = await rawRequest(s2.base, { method: 'OPTIONS', path: '/v1/chat/completions',
        headers: { origin: 'http://x', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization' } });
      assert.equal(pre.status, 204);
      assert.equal(pre.headers['access-control-allow-origin'], '*');
      assert.match(pre.headers['access-control-allow-methods'], /POST/);

      // Graceful shutdown: an in-flight stream runs to its end ([DONE]) and the process exits 0.
      const st = await openStream(s2.base, { model: MODEL, messages: simpleMessages(), max_tokens: 300, ignore_eos: true, stream: true },
        { authorization: 'Bearer sekret-key' });
      let rest = st.firstChunk;
      const ended = new Promise((resolve) => { st.res.on('data', (c) => { rest += c; }); st.res.on('end', resolve); });
      s2.proc.kill('SIGTERM');
      await ended;
      const events = sseData(rest);
      assert.equal(events.at(-1), '[DONE]');
      const last = JSON.parse(events.at(-2));
      assert.equal(last.choices[0].finish_reason, 'length');
      const { code } = await s2.exited;
      assert.equal(code, 0);
    } finally {
      await s2.stop('SIGKILL');
    }
  });
});

describe('queue full (third server)', () => {
  test('beyond --max-waiting: 503 with Retry-After and an OpenAI error body; the others complete', async () => {
    const s3 = await startServer(['--max-num-seqs', '1', '--max-waiting', '1', '--max-model-len', '512']);
    try {
      const body = { model: MODEL, messages: simpleMessages(), max_tokens: 200, ignore_eos: true };
      const results = await Promise.all(Array.from({ length: 8 }, () => rawRequest(s3.base, { body })));
      const busy = results.filter((r) => r.status === 503);
      const ok = results.filter((r) => r.status === 200);
      assert.ok(busy.length >= 1, `some requests are refused: ${results.map((r) => r.status)}`);
      assert.ok(ok.length >= 1);
      assert.equal(busy.length + ok.length, 8);
      for (const r of busy) {
        assert.equal(r.headers['retry-after'], '1');
        assert.equal(r.json.error.type, 'service_unavailable_error');
      }
      for (const r of ok) assert.equal(r.json.usage.completion_tokens, 200);
    } finally {
      const { code } = await s3.stop('SIGTERM');
      assert.equal(code, 0);
    }
  });
});

// The GLM template ignores tools, so this server runs on a copy of the demo model whose template prints them (and a
// chat_template_kwargs value) with tojson. vLLM renders the client's JSON as sent; a server that parsed bodies into
// a key-sorted map would print "properties": {"x": {}, "y": {}} and "alpha" before "zeta" instead.
describe('tools and chat_template_kwargs reach the template in the client\'s key order (fourth server)', () => {
  const TEMPLATE = [
    '{%- for m in messages %}<|{{ m.role }}|>\n{{ m.content }}{% endfor %}',
    '{%- if tools is defined and tools %}<|system|>\nTOOLS {{ tools | tojson }}{% endif %}',
    '{%- if style is defined %}<|system|>\nSTYLE {{ style | tojson }}{% endif %}',
    '{%- if add_generation_prompt %}<|assistant|>{% endif %}',
  ].join('\n');
  const tools = [{ type: 'function', function: { name: 'tap', description: 'Tap a point',
    parameters: { type: 'object', required: ['x'], properties: { y: { type: 'integer' }, x: { type: 'integer' } } } } }];
  const kwargs = { style: { zeta: 1, alpha: [2, { b: true, a: null }] } };
  const messages = [{ role: 'user', content: 'hi' }];
  // Python json.dumps separators (HF's tojson), keys as the client sent them.
  const expected = '<|user|>\nhi'
    + '<|system|>\nTOOLS [{"type": "function", "function": {"name": "tap", "description": "Tap a point", "parameters": '
    + '{"type": "object", "required": ["x"], "properties": {"y": {"type": "integer"}, "x": {"type": "integer"}}}}}]'
    + '<|system|>\nSTYLE {"zeta": 1, "alpha": [2, {"b": true, "a": null}]}<|assistant|>';
  const sorted = '<|user|>\nhi'
    + '<|system|>\nTOOLS [{"function": {"description": "Tap a point", "name": "tap", "parameters": '
    + '{"properties": {"x": {"type": "integer"}, "y": {"type": "integer"}}, "required": ["x"], "type": "object"}}, "type": "function"}]'
    + '<|system|>\nSTYLE {"alpha": [2, {"a": null, "b": true}], "zeta": 1}<|assistant|>';
  let dir;
  let s4;
  const tokenizeText = (text) => JSON.parse(execFileSync(BIN, ['tokenize', '-m', dir], { input: text }).toString());

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'autoglm-tools-'));
    fs.cpSync(path.join(SRC, 'tests/fixtures/tiny_glm4v'), dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'chat_template.jinja'), TEMPLATE);
    s4 = await startServer(['--max-model-len', '512'], { model: dir });
  });
  after(async () => {
    if (s4) {
      const { code } = await s4.stop('SIGTERM');
      assert.equal(code, 0, s4.log().slice(-3000));
    }
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  test('/tokenize renders tools and chat_template_kwargs with the client\'s key order', async () => {
    const want = tokenizeText(expected);
    assert.notDeepEqual(want, tokenizeText(sorted), 'the two key orders tokenize differently');
    const r = await rawRequest(s4.base, { path: '/tokenize',
      body: { model: MODEL, messages, tools, tool_choice: 'auto', chat_template_kwargs: kwargs } });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json.tokens, want);
    const d = await rawRequest(s4.base, { path: '/detokenize', body: { model: MODEL, tokens: r.json.tokens } });
    assert.equal(d.status, 200, d.text);
    assert.ok(d.json.prompt.includes('"properties": {"y": {"type": "integer"}, "x": {"type": "integer"}}'), d.json.prompt);
    // Without tools or kwargs the template prints neither.
    const plain = await rawRequest(s4.base, { path: '/tokenize', body: { model: MODEL, messages } });
    assert.deepEqual(plain.json.tokens, tokenizeText('<|user|>\nhi<|assistant|>'));
  });

  test('chat completions render the same prompt (openai SDK: tools, extra_body chat_template_kwargs)', async () => {
    const c4 = new OpenAI({ baseURL: `${s4.base}/v1`, apiKey: 'EMPTY', maxRetries: 0 });
    const r = await c4.chat.completions.create({ model: MODEL, messages, tools, tool_choice: 'none', max_tokens: 2,
      chat_template_kwargs: kwargs });
    assert.equal(r.usage.prompt_tokens, tokenizeText(expected).length);
  });

  test('wrong types for tools / chat_template_kwargs → 400 naming the param', async () => {
    const bad = async (extra, param) => {
      for (const p of ['/v1/chat/completions', '/tokenize']) {
        const r = await rawRequest(s4.base, { path: p, body: { model: MODEL, messages, max_tokens: 2, ...extra } });
        assert.equal(r.status, 400, `${p} ${JSON.stringify(extra)}: ${r.text}`);
        assert.equal(r.json.error.type, 'invalid_request_error');
        assert.equal(r.json.error.param, param);
      }
    };
    await bad({ tools: { type: 'function' } }, 'tools');
    await bad({ tools: ['tap'] }, 'tools[0]');
    await bad({ tools: [{ type: 'retrieval', function: { name: 'tap' } }] }, 'tools[0].type');
    await bad({ tools: [{ type: 'function' }] }, 'tools[0].function');
    await bad({ tools: [{ type: 'function', function: { name: 7 } }] }, 'tools[0].function.name');
    await bad({ tools: [{ type: 'function', function: { name: 'tap', parameters: [] } }] }, 'tools[0].function.parameters');
    await bad({ chat_template_kwargs: ['style'] }, 'chat_template_kwargs');
    await bad({ chat_template_kwargs: { enable_thinking: 'yes' } }, 'chat_template_kwargs.enable_thinking');
  });
});
