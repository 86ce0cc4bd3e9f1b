// bench/soak/checks.mjs: what a correct answer looks like, for the soak (bench/soak/soak.mjs).
// Non-streamed chat/completions bodies, SSE streams (role only in a choice's first chunk, one id, one
// finish_reason per choice and nothing after it, usage only when asked and only in the last chunk, [DONE] last
// and once), token counts (exact when ignore_eos and no stop conditions) and OpenAI error bodies. Each check
// returns a list of violations (strings); an empty list means the answer is right.

// Parses SSE bytes incrementally; calls onData(payload) for every `data:` event, in order.
export class sse_reader {
  constructor(onData) {
    this.buf = '';
    this.onData = onData;
    this.violations = [];
  }
  push(text) {
    this.buf += text;
    let k;
    while ((k = this.buf.indexOf('\n\n')) >= 0) {
      const ev = this.buf.slice(0, k);
      this.buf = this.buf.slice(k + 2);
      if (!ev.trim()) continue;
      const lines = ev.split('\n');
      const data = lines.filter((l) => l.startsWith('data: ')).map((l) => l.slice(6));
      if (data.length !== lines.length) this.violations.push(`SSE event with a non-data line: ${JSON.stringify(ev.slice(0, 120))}`);
      if (data.length) this.onData(data.join('\n'));
    }
  }
  end() {
    if (this.buf.trim()) this.violations.push(`stream ends inside an event: ${JSON.stringify(this.buf.slice(0, 120))}`);
  }
}

// Expectations of one generation request: n_choices (n x prompts), max_tokens, exact (ignore_eos without stop
// conditions: every choice runs to max_tokens), include_usage, logprobs (token entries must add up to usage).
export function expectations(body, n_prompts = 1) {
  const n = body.n ?? 1;
  const stops = body.stop !== undefined || body.stop_token_ids !== undefined;
  return {
    chat: body.messages !== undefined,
    n_choices: n * n_prompts,
    max_tokens: body.max_tokens,
    exact: body.ignore_eos === true && !stops && body.max_tokens !== undefined,
    include_usage: body.stream_options?.include_usage === true,
    logprobs: body.messages !== undefined ? body.logprobs === true : body.logprobs !== undefined,
  };
}

function check_usage(u, exp, v) {
  if (!u || typeof u !== 'object') { v.push('no usage object'); return; }
  if (!(u.prompt_tokens > 0)) v.push(`usage.prompt_tokens ${u.prompt_tokens}`);
  if (u.total_tokens !== u.prompt_tokens + u.completion_tokens) v.push(`usage.total_tokens ${u.total_tokens} != prompt + completion`);
  if (exp.max_tokens !== undefined && u.completion_tokens > exp.n_choices * exp.max_tokens)
    v.push(`usage.completion_tokens ${u.completion_tokens} > n x max_tokens ${exp.n_choices * exp.max_tokens}`);
  if (exp.exact && u.completion_tokens !== exp.n_choices * exp.max_tokens)
    v.push(`ignore_eos without stops: usage.completion_tokens ${u.completion_tokens} != ${exp.n_choices * exp.max_tokens}`);
}

// A non-streamed 200 body of /v1/chat/completions or /v1/completions.
export function check_body(j, exp) {
  const v = [];
  if (!j || typeof j !== 'object') return ['body is not a JSON object'];
  const object = exp.chat ? 'chat.completion' : 'text_completion';
  if (j.object !== object) v.push(`object '${j.object}' != '${object}'`);
  if (typeof j.id !== 'string' || !j.id.startsWith(exp.chat ? 'chatcmpl-' : 'cmpl-')) v.push(`id '${j.id}'`);
  if (!Array.isArray(j.choices) || j.choices.length !== exp.n_choices) {
    v.push(`${j.choices?.length} choices, expected ${exp.n_choices}`);
    return v;
  }
  let n_logprobs = 0;
  j.choices.forEach((c, i) => {
    if (c.index !== i) v.push(`choices[${i}].index ${c.index}`);
    if (!['stop', 'length'].includes(c.finish_reason)) v.push(`choices[${i}].finish_reason ${c.finish_reason}`);
    if (exp.exact && c.finish_reason !== 'length') v.push(`choices[${i}].finish_reason ${c.finish_reason} (ignore_eos: length)`);
    if (exp.chat) {
      if (c.message?.role !== 'assistant') v.push(`choices[${i}].message.role ${c.message?.role}`);
      if (typeof c.message?.content !== 'string') v.push(`choices[${i}].message.content not a string`);
      if (exp.logprobs) n_logprobs += c.logprobs?.content?.length ?? 0;
    } else {
      if (typeof c.text !== 'string') v.push(`choices[${i}].text not a string`);
      if (exp.logprobs) n_logprobs += c.logprobs?.tokens?.length ?? 0;
    }
  });
  check_usage(j.usage, exp, v);
  if (exp.logprobs && j.usage && n_logprobs !== j.usage.completion_tokens)
    v.push(`${n_logprobs} logprob entries for ${j.usage.completion_tokens} completion tokens`);
  return v;
}

// Streamed chunks, fed one parsed JSON object (or the string '[DONE]') at a time. `expect_done` is false for the
// openai client, which consumes [DONE] itself.
export class stream_check {
  constructor(exp, { expect_done = true, allow_partial = false } = {}) {
    this.exp = exp;
    this.expect_done = expect_done;
    this.allow_partial = allow_partial;  // a stream we cancel ourselves: no end-of-stream checks
    this.v = [];
    this.id = null;
    this.n_chunks = 0;
    this.done = false;
    this.usage = null;
    this.started = new Set();   // choice indexes that had their first chunk
    this.finished = new Set();  // choice indexes that had their finish_reason
    this.n_logprobs = 0;
    this.text = '';
  }
  data(payload) {
    if (this.done) { this.v.push(`data after [DONE]: ${payload.slice(0, 80)}`); return; }
    if (payload === '[DONE]') { this.done = true; return; }
    let j;
    try { j = JSON.parse(payload); } catch { this.v.push(`chunk is not JSON: ${payload.slice(0, 120)}`); return; }
    this.chunk(j);
  }
  chunk(j) {
    this.n_chunks++;
    if (j.error) { this.v.push(`in-band error: ${JSON.stringify(j.error).slice(0, 300)}`); return; }
    const object = this.exp.chat ? 'chat.completion.chunk' : 'text_completion';
    if (j.object !== object) this.v.push(`chunk object '${j.object}'`);
    if (this.id === null) this.id = j.id;
    else if (j.id !== this.id) this.v.push(`chunk id ${j.id} != first id ${this.id}`);
    if (this.usage) this.v.push('a chunk after the usage chunk');
    if (j.usage) {
      if (!this.exp.include_usage) this.v.push('usage chunk without stream_options.include_usage');
      if (!Array.isArray(j.choices) || j.choices.length) this.v.push('usage chunk has choices');
      this.usage = j.usage;
      return;
    }
    if (!Array.isArray(j.choices) || j.choices.length === 0) { this.v.push('chunk without choices'); return; }
    for (const c of j.choices) {
      const i = c.index;
      if (!(i >= 0 && i < this.exp.n_choices)) this.v.push(`choice index ${i}`);
      if (this.finished.has(i)) this.v.push(`choice ${i}: chunk after its finish_reason`);
      if (this.exp.chat) {
        const first = !this.started.has(i);
        if (first && c.delta?.role !== 'assistant') this.v.push(`choice ${i}: first chunk without role assistant`);
        if (!first && c.delta?.role !== undefined) this.v.push(`choice ${i}: role in a later chunk`);
        if (typeof c.delta?.content === 'string') this.text += c.delta.content;
        if (this.exp.logprobs) this.n_logprobs += c.logprobs?.content?.length ?? 0;
      } else {
        if (typeof c.text !== 'string') this.v.push(`choice ${i}: text not a string`);
        else this.text += c.text;
        if (this.exp.logprobs) this.n_logprobs += c.logprobs?.tokens?.length ?? 0;
      }
      this.started.add(i);
      if (c.finish_reason !== null && c.finish_reason !== undefined) {
        if (!['stop', 'length'].includes(c.finish_reason)) this.v.push(`choice ${i}: finish_reason ${c.finish_reason}`);
        if (this.exp.exact && c.finish_reason !== 'length') this.v.push(`choice ${i}: finish_reason ${c.finish_reason} (ignore_eos: length)`);
        this.finished.add(i);
      }
    }
  }
  // Violations once the stream has ended (everything, including the per-chunk ones).
  end() {
    const v = [...this.v];
    if (this.allow_partial) return v;
    if (this.expect_done && !this.done) v.push('no [DONE] at the end');
    if (this.finished.size !== this.exp.n_choices) v.push(`${this.finished.size} of ${this.exp.n_choices} choices finished`);
    if (this.exp.include_usage) {
      if (!this.usage) v.push('include_usage but no usage chunk');
      else check_usage(this.usage, this.exp, v);
      if (this.usage && this.exp.logprobs && this.n_logprobs !== this.usage.completion_tokens)
        v.push(`${this.n_logprobs} streamed logprob entries for ${this.usage.completion_tokens} completion tokens`);
    }
    return v;
  }
}

// An OpenAI error body with the expected status.
export function check_error(status, text, expected) {
  const v = [];
  if (!expected.includes(status)) v.push(`status ${status}, expected ${expected.join(' or ')}`);
  if (status < 400) return v;  // accepted: there is no error body to look at
  let j;
  try { j = JSON.parse(text); } catch { v.push('error body is not JSON'); return v; }
  if (typeof j?.error?.message !== 'string' || !j.error.message) v.push('no error.message');
  if (typeof j?.error?.type !== 'string') v.push('no error.type');
  return v;
}
