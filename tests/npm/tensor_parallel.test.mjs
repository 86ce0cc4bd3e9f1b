// tensor_parallel.test.mjs: `autoglm serve --tensor-parallel-size N` (issue 13) as a user meets it, through the
// official `openai` SDK: on the CPU the demo model splits over 2 and 4 in-process ranks (its 4 heads and 2 KV heads:
// KV heads replicated at 4), and greedy answers to text and to a screenshot (data URI), streamed and not, equal the
// single-rank server's token for token (the same ids: logprobs compared). A size the model cannot split is a clear
// start-up error, not a crash.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import OpenAI from 'openai';
import { startServer, pngDataUri, MODEL, BIN, SRC } from './server_helpers.mjs';
import path from 'node:path';

const servers = {};
const clients = {};

before(async () => {
  for (const tp of [1, 2, 4]) {
    servers[tp] = await startServer(['--tensor-parallel-size', String(tp), '--threads', '2']);
    clients[tp] = new OpenAI({ baseURL: `${servers[tp].base}/v1`, apiKey: 'none' });
  }
});

after(async () => {
  for (const s of Object.values(servers)) await s.stop();
});

const textMessages = [{ role: 'user', content: '打开微信，给张三发消息' }];
const imageMessages = [
  {
    role: 'user',
    content: [
      { type: 'text', text: 'Where should I tap?' },
      { type: 'image_url', image_url: { url: pngDataUri(96, 160) } },
    ],
  },
];

async function greedy(client, messages) {
  const r = await client.chat.completions.create({ model: MODEL, messages, max_tokens: 16, temperature: 0, logprobs: true });
  return { text: r.choices[0].message.content, tokens: r.choices[0].logprobs.content.map((t) => t.token), usage: r.usage };
}

async function greedyStreamed(client, messages) {
  const stream = await client.chat.completions.create({ model: MODEL, messages, max_tokens: 16, temperature: 0, stream: true });
  let text = '';
  for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
  return text;
}

describe('serve --tensor-parallel-size', () => {
  for (const [name, messages] of [['text', textMessages], ['screenshot', imageMessages]]) {
    test(`${name}: TP=2 and TP=4 answer as TP=1 (non-streaming and streaming)`, async () => {
      const ref = await greedy(clients[1], messages);
      assert.ok(ref.tokens.length > 0);
      for (const tp of [2, 4]) {
        const got = await greedy(clients[tp], messages);
        assert.deepEqual(got.tokens, ref.tokens, `TP=${tp} tokens`);
        assert.equal(got.text, ref.text);
        assert.deepEqual(got.usage, ref.usage);
        assert.equal(await greedyStreamed(clients[tp], messages), ref.text, `TP=${tp} streamed`);
      }
    });
  }

  test('concurrent requests on TP=2 (continuous batching over the ranks)', async () => {
    const ref = await greedy(clients[1], textMessages);
    const all = await Promise.all(Array.from({ length: 6 }, () => greedy(clients[2], textMessages)));
    for (const r of all) assert.deepEqual(r.tokens, ref.tokens);
  });

  test('a size the model cannot split fails at start-up naming why', () => {
    const model = path.join(SRC, 'models/demo');
    const r = spawnSync(BIN, ['serve', '-m', model, '--port', '0', '--tensor-parallel-size', '3'], { encoding: 'utf8', timeout: 60000 });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr + r.stdout, /4 attention heads do not split over 3 tensor-parallel ranks/);
    const bad = spawnSync(BIN, ['serve', '-m', model, '--port', '0', '--tensor-parallel-size', '0'], { encoding: 'utf8', timeout: 60000 });
    assert.notEqual(bad.status, 0);
  });
});
