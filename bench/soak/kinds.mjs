// bench/soak/kinds.mjs: the request kinds the soak mixes (bench/soak/soak.mjs): well-formed chat and completions
// (streamed or not, text and images, through fetch or the real `openai` client), streams we cancel, clients that
// disconnect before the answer, and malformed requests with the status each must get. Every run() resolves
// {sub, expect, status, violations[], request, response}; an empty violations list means the server was right.
import net from 'node:net';
import http from 'node:http';
import { makePng } from '../../tests/npm/server_helpers.mjs';
import { sse_reader, stream_check, expectations, check_body, check_error } from './checks.mjs';

// ---- deterministic randomness (one generator per client, so a run can be repeated) --------------------------
export function make_rng(seed) {
  let s = seed >>> 0;
  const next = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    chance: (p) => next() < p,
    int: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)),
    pick: (xs) => xs[Math.floor(next() * xs.length)],
  };
}

// ---- shared inputs -----------------------------------------------------------------------------------------
const SYSTEMS = ['You are a helpful assistant.', 'You are a phone agent. Answer with exactly one action.',
  'You operate an Android phone for the user. Think, then act.'];
const USERS = ['Open the settings app.', 'What is on the screen?', 'Send a message to Alice saying I am late.',
  'Scroll down and find the Wi-Fi switch.', 'Describe this picture in one sentence.', 'Book a table for two at 8 pm.',
  'Which button turns on dark mode?', 'Summarize the notification list.'];
const TOOL = { type: 'function', function: { name: 'tap', description: 'Tap a point on the screen',
  parameters: { type: 'object', properties: { x: { type: 'integer' }, y: { type: 'integer' } }, required: ['x', 'y'] } } };

// Images: a few fixed sizes sent again and again (the server's image and prefix caches hit), plus one-off
// sizes (misses). The PNG encoder is the tests' (deterministic gradient per size).
export const REPEATED_SIZES = [[28, 28], [64, 48], [112, 112], [200, 120], [336, 336], [640, 360]];
const uri_cache = new Map();
export function png_uri(w, h) {
  const key = `${w}x${h}`;
  let u = uri_cache.get(key);
  if (!u) {
    u = `data:image/png;base64,${makePng(w, h).toString('base64')}`;
    if (uri_cache.size < 64) uri_cache.set(key, u);
  }
  return u;
}
function image_part(rng, stats) {
  let w, h, key;
  if (rng.chance(0.8)) {
    [w, h] = rng.pick(REPEATED_SIZES);
    key = `${w}x${h}`;
  } else {
    w = rng.int(30, 110);
    h = rng.int(30, 110);
    key = 'one_off_sizes';
    stats.one_off_distinct.add(`${w}x${h}`);
  }
  stats.image_sizes[key] = (stats.image_sizes[key] ?? 0) + 1;
  stats.distinct_images.add(`${w}x${h}`);  // insertion order: the first k entries are what was sent by then
  return { type: 'image_url', image_url: { url: png_uri(w, h) } };
}

function messages(rng, content) {
  const m = [];
  if (rng.chance(0.7)) m.push({ role: 'system', content: rng.pick(SYSTEMS) });
  if (rng.chance(0.2)) m.push({ role: 'user', content: rng.pick(USERS) }, { role: 'assistant', content: 'Done.' });
  m.push({ role: 'user', content: content ?? rng.pick(USERS) });
  return m;
}

// Sampling and length parameters shared by chat and completions (short answers: the soak is about the server).
function sampling(rng, body) {
  body.max_tokens = rng.int(1, 16);
  if (rng.chance(0.5)) body.temperature = rng.pick([0, 0.7, 1.0, 1.3]);
  if (rng.chance(0.3)) body.top_p = rng.pick([0.5, 0.9, 1]);
  if (rng.chance(0.2)) body.top_k = rng.pick([5, 40]);
  if (rng.chance(0.5)) body.seed = rng.int(0, 1e6);
  if (rng.chance(0.4)) body.ignore_eos = true;
  if (rng.chance(0.1)) body.stop = rng.pick(['\n', ['.', '!'], 'the']);
  if (rng.chance(0.05)) body.n = 2;
  if (rng.chance(0.1)) { body.frequency_penalty = 0.5; body.presence_penalty = 0.3; }
  if (rng.chance(0.05)) body.repetition_penalty = 1.1;
  return body;
}

function chat_body(ctx, rng, { stream, image = false }) {
  let content;
  if (image) {
    const parts = [{ type: 'text', text: rng.pick(USERS) }, image_part(rng, ctx.stats)];
    if (rng.chance(0.15)) parts.push(image_part(rng, ctx.stats));
    content = rng.chance(0.5) ? parts : parts.reverse();
  }
  const b = sampling(rng, { model: ctx.model, messages: messages(rng, content) });
  if (stream) {
    b.stream = true;
    if (rng.chance(0.7)) b.stream_options = { include_usage: true };
  }
  if (rng.chance(0.15)) {
    b.logprobs = true;
    if (rng.chance(0.5)) b.top_logprobs = rng.int(0, 5);
  }
  if (rng.chance(0.1)) b.chat_template_kwargs = { enable_thinking: rng.chance(0.5) };
  if (rng.chance(0.05)) b.return_reasoning = true;
  if (rng.chance(0.05)) b.tools = [TOOL];
  return b;
}

function token_prompt(rng, n) {
  return Array.from({ length: n }, () => rng.int(0, 1400));
}

const clip = (s, n = 2000) => (typeof s === 'string' && s.length > n ? `${s.slice(0, n)}... (${s.length} chars)` : s);
const show = (body) => clip(typeof body === 'string' ? body : Buffer.isBuffer(body) ? body.toString('latin1') : JSON.stringify(body), 1500);

// ---- transport ---------------------------------------------------------------------------------------------
// POST through fetch; a streamed 200 is read through the SSE reader into the stream check.
async function post(ctx, path, body, { check, cancel_after = 0 } = {}) {
  const ctrl = new AbortController();
  const signal = AbortSignal.any([ctrl.signal, AbortSignal.timeout(ctx.timeout_ms)]);
  const data = typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body);
  let res;
  try {
    res = await fetch(ctx.base + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: data, signal });
  } catch (e) {
    return { status: 0, text: '', transport: `${e.name}: ${e.cause?.code ?? e.message}` };
  }
  const ctype = res.headers.get('content-type') ?? '';
  if (!ctype.startsWith('text/event-stream')) {
    try {
      return { status: res.status, text: await res.text() };
    } catch (e) {
      return { status: res.status, text: '', transport: `reading the body: ${e.name}: ${e.cause?.code ?? e.message}` };
    }
  }
  // A stream: feed the check; cancel_after > 0 aborts after that many data events.
  let n_events = 0, cancelled = false, raw = '';
  const reader = new sse_reader((payload) => { n_events++; check.data(payload); });
  const dec = new TextDecoder();
  try {
    for await (const piece of res.body) {
      const text = dec.decode(piece, { stream: true });
      if (raw.length < 4000) raw += text;
      reader.push(text);
      if (cancel_after && n_events >= cancel_after && !check.done) {
        cancelled = true;
        ctrl.abort();
        break;
      }
    }
  } catch (e) {
    if (!cancelled) return { status: res.status, text: raw, stream: true, transport: `mid-stream: ${e.name}: ${e.cause?.code ?? e.message}` };
  }
  if (!cancelled) reader.end();
  check.v.push(...reader.violations);
  return { status: res.status, text: raw, stream: true, cancelled, n_events };
}

// One generation request through fetch, checked in full.
async function generation(ctx, path, body, exp, sub, extra = {}) {
  const check = body.stream ? new stream_check(exp, { allow_partial: !!extra.cancel_after }) : null;
  const r = await post(ctx, path, body, { check, ...extra });
  const v = [];
  if (r.transport) v.push(`transport error: ${r.transport}`);
  else if (r.status !== 200) v.push(`status ${r.status}`);
  else if (r.stream) v.push(...check.end());
  else if (body.stream) v.push('stream requested, got a non-SSE 200');
  else {
    let j;
    try { j = JSON.parse(r.text); } catch { v.push('200 body is not JSON'); }
    if (j) v.push(...check_body(j, exp));
  }
  if (extra.cancel_after) sub += r.cancelled ? '/cancelled' : '/finished_first';
  return { sub, expect: 200, status: r.status, violations: v, request: show(body), response: clip(r.text) };
}

// Sends a request over a raw socket and drops it: after the body, half-way through it, or after the headers.
function disconnect(ctx, rng) {
  const body = chat_body(ctx, rng, { stream: rng.chance(0.5), image: rng.chance(0.3) });
  body.max_tokens = rng.int(64, 256);
  body.ignore_eos = true;
  delete body.stop;
  const data = Buffer.from(JSON.stringify(body));
  const variant = rng.pick(['after_body', 'after_body', 'after_body_wait', 'mid_body', 'headers_only']);
  const delay = variant === 'after_body_wait' ? rng.int(5, 40) : rng.int(0, 3);
  return new Promise((resolve) => {
    let got = 0, error = null, done = false;
    const sock = net.connect(ctx.port, '127.0.0.1');
    const finish = () => {
      if (done) return;
      done = true;
      sock.destroy();
      const v = error ? [`socket error before we left: ${error}`] : [];
      resolve({ sub: `${variant}${got ? '/answer_started' : '/before_answer'}`, expect: 'drop', status: 0, violations: v,
        request: show(body), response: '' });
    };
    sock.on('data', (d) => { got += d.length; });
    sock.on('error', (e) => { error = e.code ?? e.message; finish(); });
    sock.on('connect', () => {
      const head = `POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${data.length}\r\n\r\n`;
      if (variant === 'headers_only') sock.write(head);
      else if (variant === 'mid_body') sock.write(Buffer.concat([Buffer.from(head), data.subarray(0, data.length >> 1)]));
      else sock.write(Buffer.concat([Buffer.from(head), data]));
      setTimeout(finish, delay);
    });
  });
}

// A client that stops reading its stream (the socket paused, so kernel buffers fill and the server must hold or
// drop what it cannot send), then leaves. Must cost the server nothing once gone (KV usage, RSS).
function slow_reader(ctx, rng) {
  const body = chat_body(ctx, rng, { stream: true });
  body.max_tokens = ctx.max_model_len;  // clamped to the room left: as long an answer as the context allows
  body.ignore_eos = true;
  delete body.stop;
  const data = Buffer.from(JSON.stringify(body));
  const pause_ms = rng.int(200, 1500);
  return new Promise((resolve) => {
    let error = null, done = false;
    const sock = net.connect(ctx.port, '127.0.0.1');
    const finish = () => {
      if (done) return;
      done = true;
      sock.destroy();
      resolve({ sub: 'paused_then_gone', expect: 'drop', status: 0, violations: error ? [`socket error before we left: ${error}`] : [],
        request: show(body), response: '' });
    };
    sock.on('error', (e) => { error = e.code ?? e.message; finish(); });
    sock.on('connect', () => {
      sock.pause();
      sock.write(Buffer.concat([Buffer.from(`POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${data.length}\r\n\r\n`), data]));
      setTimeout(finish, pause_ms);
    });
  });
}

// GET /v1/models, /v1/models/{id}, /metrics; POST /tokenize and /detokenize: well-formed, must answer 200.
async function info(ctx, rng) {
  const cases = [['models', 'GET', '/v1/models'], ['model', 'GET', `/v1/models/${ctx.model}`], ['metrics', 'GET', '/metrics'],
    ['tokenize', 'POST', '/tokenize', { model: ctx.model, prompt: rng.pick(USERS) }],
    ['tokenize_chat', 'POST', '/tokenize', { model: ctx.model, messages: messages(rng) }],
    ['detokenize', 'POST', '/detokenize', { model: ctx.model, tokens: token_prompt(rng, rng.int(1, 20)) }]];
  const [sub, method, path, body] = rng.pick(cases);
  let status = 0, text = '';
  const v = [];
  try {
    const r = await fetch(ctx.base + path, { method, signal: AbortSignal.timeout(ctx.timeout_ms),
      ...(body ? { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } } : {}) });
    status = r.status;
    text = await r.text();
    if (status !== 200) v.push(`status ${status}`);
    else if (sub !== 'metrics') {
      const j = JSON.parse(text);
      if (sub.startsWith('tokenize') && !(j.count > 0 && j.tokens?.length === j.count)) v.push('tokenize: count and tokens disagree');
      if (sub === 'detokenize' && typeof j.prompt !== 'string') v.push('detokenize: no prompt string');
      if (sub === 'models' && j.data?.[0]?.id !== ctx.model) v.push('models: served model missing');
    } else if (!text.includes('autoglm_kv_cache_usage_perc')) v.push('metrics: no autoglm_kv_cache_usage_perc');
  } catch (e) { v.push(`transport or parse error: ${e.name}: ${e.cause?.code ?? e.message}`); }
  return { sub, expect: 200, status, violations: v, request: show(body ?? `${method} ${path}`), response: clip(text) };
}

// The real openai npm client (maxRetries 0, so a 5xx is seen, never retried away).
async function openai_request(ctx, rng) {
  const mode = rng.pick(['chat', 'chat_stream', 'chat_stream', 'completion']);
  const v = [];
  let body, status = 200, response = '';
  try {
    if (mode === 'completion') {
      body = sampling(rng, { model: ctx.model, prompt: rng.pick(USERS) });
      const r = await ctx.openai.completions.create(body);
      v.push(...check_body(r, expectations(body)));
      response = JSON.stringify(r);
    } else if (mode === 'chat') {
      body = chat_body(ctx, rng, { stream: false, image: rng.chance(0.2) });
      const r = await ctx.openai.chat.completions.create(body);
      v.push(...check_body(r, expectations(body)));
      response = JSON.stringify(r);
    } else {
      body = chat_body(ctx, rng, { stream: true, image: rng.chance(0.2) });
      const check = new stream_check(expectations(body), { expect_done: false });
      const s = await ctx.openai.chat.completions.create(body);
      for await (const chunk of s) check.chunk(chunk);
      v.push(...check.end());
    }
  } catch (e) {
    status = e.status ?? 0;
    v.push(`openai client threw: ${e.constructor?.name} ${e.status ?? ''} ${e.message}`);
    response = JSON.stringify(e.error ?? null);
  }
  return { sub: mode, expect: 200, status, violations: v, request: show(body), response: clip(response) };
}

// A malformed request: must get exactly `expected` (a list of statuses) with an OpenAI error body.
async function malformed(ctx, sub, path, body, expected, method = 'POST') {
  let status = 0, text = '', transport = null;
  if (method !== 'POST') {
    try {
      const r = await fetch(ctx.base + path, { method, signal: AbortSignal.timeout(ctx.timeout_ms) });
      status = r.status;
      text = await r.text();
    } catch (e) { transport = `${e.name}: ${e.cause?.code ?? e.message}`; }
  } else {
    const r = await post(ctx, path, body);
    ({ status, text } = r);
    transport = r.transport;
  }
  const v = transport ? [`transport error: ${transport}`] : check_error(status, text, expected);
  return { sub, expect: expected.join('|'), status, violations: v, request: show(body ?? `${method} ${path}`), response: clip(text) };
}

// A body over --max-body-bytes through node:http, which tolerates the server answering before the upload ends.
function too_large(ctx, rng) {
  const pad = 'x'.repeat(ctx.max_body_bytes + rng.int(1, 65536));
  const body = `{"model":"${ctx.model}","messages":[{"role":"user","content":"${pad}"}]}`;
  return new Promise((resolve) => {
    let answered = false;
    const done = (status, text, err) => resolve({ sub: 'body_over_limit', expect: '413', status,
      violations: err ? [`transport error: ${err}`] : check_error(status, text, [413]),
      request: `chat body of ${body.length} bytes`, response: clip(text) });
    const req = http.request(`${ctx.base}/v1/chat/completions`, { method: 'POST', agent: false,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      answered = true;
      let text = '';
      res.on('data', (c) => { text += c; });
      res.on('end', () => done(res.statusCode, text));
      res.on('error', (e) => done(res.statusCode, text, e.code ?? e.message));
    });
    req.setTimeout(ctx.timeout_ms, () => req.destroy(new Error('timeout')));
    req.on('error', (e) => { if (!answered) done(0, '', e.code ?? e.message); });
    req.end(body);
  });
}

const MSG = [{ role: 'user', content: 'hi' }];

// ---- the kinds ---------------------------------------------------------------------------------------------
// weight: share of the mix (normalized); group: 'ok' (well-formed: any error is a finding), 'cancel',
// 'disconnect' (must not hurt the server: checked through /health, KV usage and RSS), 'malformed' (exact 4xx).
export const KINDS = [
  { name: 'chat', group: 'ok', weight: 26,
    run: (ctx, rng) => { const b = chat_body(ctx, rng, { stream: false }); return generation(ctx, '/v1/chat/completions', b, expectations(b), 'fetch'); } },
  { name: 'chat_stream', group: 'ok', weight: 22,
    run: (ctx, rng) => { const b = chat_body(ctx, rng, { stream: true }); return generation(ctx, '/v1/chat/completions', b, expectations(b), 'fetch'); } },
  { name: 'chat_image', group: 'ok', weight: 10,
    run: (ctx, rng) => {
      const b = chat_body(ctx, rng, { stream: rng.chance(0.5), image: true });
      return generation(ctx, '/v1/chat/completions', b, expectations(b), b.stream ? 'stream' : 'json');
    } },
  { name: 'completion', group: 'ok', weight: 8,
    run: (ctx, rng) => {
      const b = sampling(rng, { model: ctx.model });
      let sub, n_prompts = 1;
      const r = rng.next();
      if (r < 0.55) { b.prompt = rng.pick(USERS); sub = 'text'; }
      else if (r < 0.8) { b.prompt = token_prompt(rng, rng.int(1, 40)); sub = 'tokens'; }
      else if (r < 0.98) { b.prompt = [rng.pick(USERS), rng.pick(USERS)]; n_prompts = 2; sub = 'two_prompts'; }
      else {
        // The context edge: a prompt two tokens short of max_model_len; max_tokens is clamped to the room left.
        b.prompt = token_prompt(rng, ctx.max_model_len - 2); b.max_tokens = 4; sub = 'near_context_limit';
      }
      if (rng.chance(0.4)) { b.stream = true; if (rng.chance(0.7)) b.stream_options = { include_usage: true }; }
      if (rng.chance(0.15)) b.logprobs = rng.int(0, 3);
      if (!b.stream && rng.chance(0.1)) b.echo = true;
      const exp = expectations(b, n_prompts);
      if (sub === 'near_context_limit') { exp.exact = false; exp.max_tokens = 2; }
      return generation(ctx, '/v1/completions', b, exp, `${sub}${b.stream ? '/stream' : ''}`);
    } },
  { name: 'openai_client', group: 'ok', weight: 4, run: openai_request },
  { name: 'stream_cancel', group: 'cancel', weight: 5,
    run: (ctx, rng) => {
      const b = chat_body(ctx, rng, { stream: true, image: rng.chance(0.2) });
      b.max_tokens = rng.int(100, 400);
      b.ignore_eos = true;
      return generation(ctx, '/v1/chat/completions', b, expectations(b), 'abort', { cancel_after: rng.int(1, 4) });
    } },
  { name: 'info_endpoints', group: 'ok', weight: 2, run: info },
  { name: 'disconnect', group: 'disconnect', weight: 5, run: disconnect },
  { name: 'slow_reader', group: 'disconnect', weight: 1, run: slow_reader },
  { name: 'bad_json', group: 'malformed', weight: 2,
    run: (ctx, rng) => {
      const cases = [['truncated', '{"model":"x","messages":[{"role":"user","content":"hi"'], ['not_json', 'hello there'],
        ['empty', ''], ['trailing_garbage', `{"messages":${JSON.stringify(MSG)}}xyz`], ['bad_array', '{"messages": [}'],
        ['invalid_utf8', Buffer.concat([Buffer.from('{"messages":[{"role":"user","content":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}]}')])],
        ['single_quotes', "{'messages': []}"], ['nul_byte', '{"messages"\u0000:1}']];
      const [sub, body] = rng.pick(cases);
      return malformed(ctx, sub, rng.chance(0.8) ? '/v1/chat/completions' : '/v1/completions', body, [400]);
    } },
  { name: 'wrong_type', group: 'malformed', weight: 2,
    run: (ctx, rng) => {
      const m = ctx.model;
      const cases = [['messages_string', { model: m, messages: 'hi' }], ['temperature_string', { model: m, messages: MSG, temperature: '0.5' }],
        ['stream_string', { model: m, messages: MSG, stream: 'yes' }], ['max_tokens_float', { model: m, messages: MSG, max_tokens: 1.5 }],
        ['content_number', { model: m, messages: [{ role: 'user', content: 5 }] }], ['unknown_role', { model: m, messages: [{ role: 'wizard', content: 'x' }] }],
        ['messages_empty', { model: m, messages: [] }], ['body_array', [1, 2]], ['stop_number', { model: m, messages: MSG, stop: 5 }],
        ['no_messages', { model: m }], ['image_part_no_url', { model: m, messages: [{ role: 'user', content: [{ type: 'image_url', image_url: {} }] }] }],
        ['seed_string', { model: m, messages: MSG, seed: 'x' }], ['stream_options_array', { model: m, messages: MSG, stream: true, stream_options: [] }]];
      const [sub, body] = rng.pick(cases);
      if (rng.chance(0.2)) return malformed(ctx, 'prompt_object', '/v1/completions', { model: m, prompt: { a: 1 } }, [400]);
      return malformed(ctx, sub, '/v1/chat/completions', body, [400]);
    } },
  { name: 'unknown_model', group: 'malformed', weight: 2,
    run: (ctx, rng) => {
      const model = rng.pick(['gpt-4o', 'autoglm-phone-9b-x', 'AUTOGLM-PHONE-9B']);
      if (rng.chance(0.3)) return malformed(ctx, 'completion', '/v1/completions', { model, prompt: 'hi', max_tokens: 2 }, [404]);
      return malformed(ctx, 'chat', '/v1/chat/completions', { model, messages: MSG, max_tokens: 2, stream: rng.chance(0.5) }, [404]);
    } },
  { name: 'oversize_value', group: 'malformed', weight: 2,
    run: (ctx, rng) => {
      const m = ctx.model;
      const cases = [['max_tokens_2^40', { max_tokens: 2 ** 40 }], ['max_tokens_0', { max_tokens: 0 }], ['max_tokens_negative', { max_tokens: -5 }],
        ['n_1000', { n: 1000 }], ['temperature_5', { temperature: 5 }], ['top_p_2', { top_p: 2 }],
        ['top_logprobs_50', { logprobs: true, top_logprobs: 50 }], ['stop_17_strings', { stop: Array.from({ length: 17 }, (_, i) => `s${i}`) }],
        ['stop_token_id_negative', { stop_token_ids: [-1] }], ['frequency_penalty_9', { frequency_penalty: 9 }],
        ['seed_float', { seed: 1.5 }], ['max_tokens_2^64', { max_tokens: 18446744073709551616 }]];
      const [sub, extra] = rng.pick(cases);
      return malformed(ctx, sub, '/v1/chat/completions', { model: m, messages: MSG, ...extra }, [400]);
    } },
  { name: 'too_long_prompt', group: 'malformed', weight: 1.5,
    run: (ctx, rng) => {
      const r = rng.next();
      if (r < 0.5) return malformed(ctx, 'chat_text', '/v1/chat/completions', { model: ctx.model, messages: [{ role: 'user', content: ctx.long_text }], max_tokens: 4, stream: rng.chance(0.3) }, [400]);
      if (r < 0.75) return malformed(ctx, 'completion_text', '/v1/completions', { model: ctx.model, prompt: ctx.long_text, max_tokens: 4 }, [400]);
      return malformed(ctx, 'completion_tokens', '/v1/completions', { model: ctx.model, prompt: token_prompt(rng, ctx.max_model_len + rng.int(0, 50)), max_tokens: 4 }, [400]);
    } },
  { name: 'bad_image', group: 'malformed', weight: 1.5,
    run: (ctx, rng) => {
      const png = makePng(40, 30);
      const cases = [['bad_base64', 'data:image/png;base64,!!!!'], ['text_as_png', `data:image/png;base64,${Buffer.from('hello').toString('base64')}`],
        ['truncated_png', `data:image/png;base64,${png.subarray(0, png.length >> 1).toString('base64')}`],
        ['http_url', 'http://127.0.0.1:1/x.png'], ['text_mime', 'data:text/plain;base64,aGVsbG8='], ['empty_url', ''],
        ['file_url', 'file:///etc/passwd']];
      const [sub, url] = rng.pick(cases);
      const body = { model: ctx.model, max_tokens: 2, messages: [{ role: 'user', content: [{ type: 'text', text: 'what is this' }, { type: 'image_url', image_url: { url } }] }] };
      return malformed(ctx, sub, '/v1/chat/completions', body, [400]);
    } },
  { name: 'bad_route', group: 'malformed', weight: 1,
    run: (ctx, rng) => {
      const cases = [['get_chat', '/v1/chat/completions', 'GET', [405]], ['post_unknown', '/v1/nothing', 'POST', [404]],
        ['put_health', '/health', 'PUT', [405]], ['delete_models', '/v1/models', 'DELETE', [405]]];
      const [sub, path, method, expected] = rng.pick(cases);
      return malformed(ctx, sub, path, method === 'POST' ? { model: ctx.model } : undefined, expected, method);
    } },
  { name: 'body_too_large', group: 'malformed', weight: 0.3, run: too_large },
  // Issue 8 class 5: values OpenAI rejects with 400 (1e400 anywhere; wrong-typed response_format, tool_choice,
  // logit_bias, parallel_tool_calls).
  { name: 'openai_400', group: 'malformed', weight: 1.5,
    run: (ctx, rng) => {
      const head = `{"model":"${ctx.model}","messages":[{"role":"user","content":"hi"}],"max_tokens":2`;
      const cases = [['temperature_1e400', `${head},"temperature":1e400}`], ['ignored_field_1e400', `${head},"foo":1e400}`],
        ['response_format_string', `${head},"response_format":"json_object"}`], ['tool_choice_number', `${head},"tool_choice":5}`],
        ['logit_bias_string', `${head},"logit_bias":"x"}`], ['parallel_tool_calls_string', `${head},"parallel_tool_calls":"yes"}`]];
      const [sub, body] = rng.pick(cases);
      return malformed(ctx, sub, '/v1/chat/completions', body, [400]);
    } },
];
