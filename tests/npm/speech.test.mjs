// speech.test.mjs: speech in (issue 12) through the real `openai` client and raw HTTP. `autoglm serve
// --asr-model DIR` with a tiny random-weight Whisper checkpoint (written by autoglm_test_make_whisper_model, the real
// layout and vocabulary; its transcripts are gibberish, but the whole path runs): /v1/audio/transcriptions in every
// response format and /v1/audio/translations; input_audio parts of chat messages become their transcript in the
// prompt (same tokens as sending the transcript as text); malformed uploads and forms are 400s with an error
// object; /v1/models and /metrics show the speech model; a server without --asr-model answers 400 naming the flag;
// `autoglm transcribe` prints the same formats.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';
import { BIN, SRC, MODEL, startServer, rawRequest } from './server_helpers.mjs';

const AUDIO = path.join(SRC, 'tests/assets/audio');
const WAV = path.join(AUDIO, 'speech_16k.wav');
const MAKER = process.env.AUTOGLM_WHISPER_MAKER ??
  path.resolve(path.dirname(BIN ?? '.'), '../tests/npm/autoglm_test_make_whisper_model');
const ASR_NAME = 'whisper-tiny-random';
const WAV_SECONDS = 2.6048125;  // 41677 samples at 16 kHz

let asrDir;
let tmpRoot;

function writeWhisperModel() {
  assert.ok(fs.existsSync(MAKER), `${MAKER} is missing: build the target autoglm_test_make_whisper_model`);
  tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'autoglm-speech-'));
  asrDir = path.join(tmpRoot, ASR_NAME);
  execFileSync(MAKER, [asrDir]);
}

// A multipart/form-data body by hand, for the forms the openai client will not write.
function form(parts, boundary = 'AbCdEf0123') {
  const chunks = [];
  for (const p of parts) {
    let head = `--${boundary}\r\nContent-Disposition: form-data; name="${p.name}"`;
    if (p.filename !== undefined) head += `; filename="${p.filename}"`;
    head += '\r\n';
    if (p.type) head += `Content-Type: ${p.type}\r\n`;
    chunks.push(Buffer.from(head + '\r\n'), Buffer.isBuffer(p.data) ? p.data : Buffer.from(p.data), Buffer.from('\r\n'));
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return { body: Buffer.concat(chunks), contentType: `multipart/form-data; boundary=${boundary}` };
}

async function postForm(base, parts, { pathname = '/v1/audio/transcriptions', contentType } = {}) {
  const f = form(parts);
  return rawRequest(base, { path: pathname, body: f.body, headers: { 'content-type': contentType ?? f.contentType } });
}

function assertError(r, status, { param, messageIncludes } = {}) {
  assert.equal(r.status, status, r.text);
  assert.ok(r.json?.error, `no error object: ${r.text}`);
  assert.equal(typeof r.json.error.message, 'string');
  assert.equal(r.json.error.type, 'invalid_request_error');
  if (param !== undefined) assert.equal(r.json.error.param, param, r.text);
  if (messageIncludes) assert.ok(r.json.error.message.includes(messageIncludes), r.json.error.message);
}

const wavPart = (data = fs.readFileSync(WAV), filename = 'speech.wav', type = 'audio/wav') =>
  ({ name: 'file', filename, type, data });

describe('speech: autoglm serve --asr-model', () => {
  let srv;
  let client;
  before(async () => {
    writeWhisperModel();
    srv = await startServer(['--asr-model', asrDir]);
    client = new OpenAI({ baseURL: `${srv.base}/v1`, apiKey: 'unused', maxRetries: 0 });
  });
  after(async () => {
    await srv?.stop();
    if (tmpRoot) fs.rmSync(tmpRoot, { recursive: true, force: true });
  });

  test('/v1/models lists the speech model beside the chat model', async () => {
    const ids = [];
    for await (const m of client.models.list()) ids.push(m.id);
    assert.deepEqual(ids, [MODEL, ASR_NAME]);
    const one = await client.models.retrieve(ASR_NAME);
    assert.equal(one.id, ASR_NAME);
  });

  test('transcriptions: json, text, verbose_json, srt, vtt through the openai client', async () => {
    const create = (response_format, extra = {}) => client.audio.transcriptions.create(
      { file: fs.createReadStream(WAV), model: ASR_NAME, response_format, ...extra });

    const json = await create('json');
    assert.equal(typeof json.text, 'string');
    assert.ok(json.text.length > 0, 'the random model still says something');
    assert.deepEqual(json.usage, { type: 'duration', seconds: 3 });
    // Same audio, same options, greedy: the text format is the same words.
    const text = await create('text');
    assert.equal(typeof text, 'string');
    assert.equal(text, `${json.text}\n`);
    // whisper-1, as OpenAI's scripts send it, is answered by the server's speech model.
    assert.equal((await client.audio.transcriptions.create({ file: fs.createReadStream(WAV), model: 'whisper-1' })).text,
      json.text);

    const verbose = await create('verbose_json', { timestamp_granularities: ['segment'] });
    assert.equal(verbose.task, 'transcribe');
    assert.equal(typeof verbose.language, 'string');
    assert.ok(verbose.language.length > 2, `a language name, not a code: ${verbose.language}`);
    assert.ok(Math.abs(verbose.duration - WAV_SECONDS) < 1e-3, `duration ${verbose.duration}`);
    assert.ok(verbose.segments.length > 0);
    let prevEnd = 0;
    verbose.segments.forEach((s, i) => {
      assert.equal(s.id, i);
      for (const k of ['seek', 'start', 'end', 'avg_logprob', 'compression_ratio', 'no_speech_prob', 'temperature'])
        assert.equal(typeof s[k], 'number', k);
      assert.equal(typeof s.text, 'string');
      assert.ok(Array.isArray(s.tokens) && s.tokens.every(Number.isInteger));
      assert.ok(s.start >= prevEnd - 1e-9 && s.end >= s.start && s.end <= WAV_SECONDS + 1e-3, JSON.stringify(s));
      assert.equal(s.temperature, 0);
      prevEnd = s.end;
    });

    // Subtitles: one cue per segment with text, times from the verbose segments.
    const cueTimes = verbose.segments.filter((s) => s.text.trim()).map((s) => [s.start, s.end]);
    const stamp = (sec, mark) => {
      const ms = Math.round(sec * 1000);
      const p2 = (n) => String(n).padStart(2, '0');
      return `${p2(Math.floor(ms / 3600000))}:${p2(Math.floor(ms / 60000) % 60)}:${p2(Math.floor(ms / 1000) % 60)}${mark}${String(ms % 1000).padStart(3, '0')}`;
    };
    const srt = await create('srt');
    const srtCues = srt.trim().split('\n\n');
    assert.equal(srtCues.length, cueTimes.length, srt);
    srtCues.forEach((cue, i) => {
      const lines = cue.split('\n');
      assert.equal(lines[0], String(i + 1));
      assert.equal(lines[1], `${stamp(cueTimes[i][0], ',')} --> ${stamp(cueTimes[i][1], ',')}`);
      assert.ok(lines[2].length > 0);
    });
    const vtt = await create('vtt');
    assert.ok(vtt.startsWith('WEBVTT\n\n'), vtt);
    const vttCues = vtt.slice(8).trim().split('\n\n');
    assert.equal(vttCues.length, cueTimes.length);
    vttCues.forEach((cue, i) => {
      assert.equal(cue.split('\n')[0], `${stamp(cueTimes[i][0], '.')} --> ${stamp(cueTimes[i][1], '.')}`);
    });
  });

  test('other containers (mp3, flac, ogg) and a language / prompt / temperature', async () => {
    for (const f of ['speech.mp3', 'speech.flac', 'speech.ogg']) {
      const r = await client.audio.transcriptions.create({ file: fs.createReadStream(path.join(AUDIO, f)), model: ASR_NAME });
      assert.equal(typeof r.text, 'string', f);
    }
    const r = await client.audio.transcriptions.create({ file: fs.createReadStream(WAV), model: ASR_NAME,
      language: 'en', prompt: 'Open the settings app.', temperature: 0.4, response_format: 'verbose_json' });
    assert.equal(r.language, 'english');
    assert.ok(r.segments.every((s) => Math.abs(s.temperature - 0.4) < 1e-6));
  });

  test('translations: the translate task', async () => {
    const r = await client.audio.translations.create({ file: fs.createReadStream(WAV), model: ASR_NAME,
      response_format: 'verbose_json' });
    assert.equal(r.task, 'translate');
    assert.equal(typeof r.text, 'string');
  });

  test('malformed audio uploads are 400s with an error object', async () => {
    const bad = async (file, messageIncludes) => {
      const r = await postForm(srv.base, [{ name: 'model', data: ASR_NAME }, file]);
      assertError(r, 400, { param: 'file', messageIncludes });
    };
    await bad(wavPart(fs.readFileSync(path.join(AUDIO, 'garbage.bin')), 'garbage.bin', 'application/octet-stream'));
    await bad(wavPart(fs.readFileSync(path.join(AUDIO, 'truncated_speech.wav')), 'truncated_speech.wav'));
    await bad(wavPart(fs.readFileSync(path.join(AUDIO, 'header_only.wav')), 'header_only.wav'));
    await bad(wavPart(Buffer.alloc(0)), 'empty');
    await bad(wavPart(Buffer.from('hello, this is not audio\n'), 'notes.txt', 'text/plain'));
    // Through the client too: it surfaces the 400 as BadRequestError with the error object.
    await assert.rejects(client.audio.transcriptions.create({
      file: new File([Buffer.from('garbage garbage garbage')], 'x.wav', { type: 'audio/wav' }), model: ASR_NAME }),
    (e) => e.status === 400 && e.error?.param === 'file' && typeof e.error?.message === 'string');
    // The server is fine afterwards.
    assert.equal(typeof (await client.audio.transcriptions.create({ file: fs.createReadStream(WAV), model: ASR_NAME })).text,
      'string');
  });

  test('malformed forms and fields are 400s naming the problem', async () => {
    const wav = wavPart();
    assertError(await postForm(srv.base, [{ name: 'model', data: ASR_NAME }]), 400,
      { param: 'file', messageIncludes: "'file'" });
    assertError(await postForm(srv.base, [wav, { name: 'model', data: 'a' }, { name: 'model', data: 'b' }]), 400,
      { param: 'model', messageIncludes: 'more than once' });
    assertError(await postForm(srv.base, [wav, { name: 'response_format', data: 'xml' }]), 400, { param: 'response_format' });
    assertError(await postForm(srv.base, [wav, { name: 'temperature', data: 'hot' }]), 400, { param: 'temperature' });
    assertError(await postForm(srv.base, [wav, { name: 'temperature', data: '1.5' }]), 400, { param: 'temperature' });
    assertError(await postForm(srv.base, [wav, { name: 'timestamp_granularities[]', data: 'word' }]), 400,
      { param: 'timestamp_granularities' });
    assertError(await postForm(srv.base, [wav, { name: 'language', data: 'klingon' }]), 400);
    assertError(await postForm(srv.base, [wav, { name: 'stream', data: 'true' }]), 400, { param: 'stream' });
    const unknown = await postForm(srv.base, [wav, { name: 'model', data: 'gpt-4o-transcribe' }]);
    assert.equal(unknown.status, 404);
    assert.equal(unknown.json.error.code, 'model_not_found');
    // Not a form at all, a form without a boundary, a boundary the body does not use, a truncated body.
    assertError(await rawRequest(srv.base, { path: '/v1/audio/transcriptions', body: { file: 'x' } }), 400,
      { messageIncludes: 'multipart/form-data' });
    const f = form([{ name: 'model', data: ASR_NAME }, wav]);
    const send = (body, contentType) => rawRequest(srv.base, { path: '/v1/audio/transcriptions', body, headers: { 'content-type': contentType } });
    assertError(await send(f.body, 'multipart/form-data'), 400, { messageIncludes: 'boundary' });
    assertError(await send(f.body, 'multipart/form-data; boundary=nothere'), 400, { messageIncludes: 'boundary' });
    assertError(await send(f.body.subarray(0, f.body.length - 40), f.contentType), 400, { messageIncludes: 'truncated' });
    assertError(await send(Buffer.alloc(0), f.contentType), 400);
    // GET is not allowed.
    const get = await rawRequest(srv.base, { method: 'GET', path: '/v1/audio/transcriptions' });
    assert.equal(get.status, 405);
  });

  test('chat: an input_audio part becomes its transcript in the prompt', async () => {
    const wav = fs.readFileSync(WAV);
    // The transcript the chat path uses: default options (language detected, greedy, no timestamps).
    const { text: transcript } = await client.audio.transcriptions.create({ file: fs.createReadStream(WAV), model: ASR_NAME });
    const withAudio = [{ role: 'user', content: [{ type: 'text', text: 'Do what I say:' },
      { type: 'input_audio', input_audio: { data: wav.toString('base64'), format: 'wav' } }] }];
    const asText = [{ role: 'user', content: [{ type: 'text', text: 'Do what I say:' }, { type: 'text', text: transcript }] }];
    const withoutAudio = [{ role: 'user', content: [{ type: 'text', text: 'Do what I say:' }] }];

    // /tokenize builds the chat prompt exactly as /v1/chat/completions: the same ids as the transcript typed in.
    const tok = async (messages) => {
      const r = await rawRequest(srv.base, { path: '/tokenize', body: { model: MODEL, messages } });
      assert.equal(r.status, 200, r.text);
      return r.json.tokens;
    };
    const audioIds = await tok(withAudio);
    assert.deepEqual(audioIds, await tok(asText));
    assert.ok(audioIds.length > (await tok(withoutAudio)).length);

    const complete = (messages) => client.chat.completions.create({ model: MODEL, messages, max_tokens: 2, temperature: 0 });
    const a = await complete(withAudio);
    const b = await complete(asText);
    const c = await complete(withoutAudio);
    assert.equal(a.usage.prompt_tokens, audioIds.length);
    assert.equal(a.usage.prompt_tokens, b.usage.prompt_tokens);
    assert.ok(a.usage.prompt_tokens > c.usage.prompt_tokens);
    assert.equal(a.choices[0].message.content, b.choices[0].message.content);

    // Bad audio in a message: 400 naming the part.
    await assert.rejects(complete([{ role: 'user', content: [
      { type: 'input_audio', input_audio: { data: Buffer.from('not audio at all').toString('base64'), format: 'wav' } }] }]),
    (e) => e.status === 400 && e.error?.param === 'messages[0].content[0].input_audio');
    await assert.rejects(complete([{ role: 'user', content: [
      { type: 'input_audio', input_audio: { data: '!!!not base64', format: 'mp3' } }] }]),
    (e) => e.status === 400 && e.error?.param === 'messages[0].content[0].input_audio.data');
  });

  test('/metrics counts transcriptions and audio seconds', async () => {
    const r = await rawRequest(srv.base, { method: 'GET', path: '/metrics' });
    const value = (name, source) => {
      const m = new RegExp(`^${name}\\{[^}]*source="${source}"\\} (\\S+)$`, 'm').exec(r.text);
      assert.ok(m, `${name}{source="${source}"} missing`);
      return Number(m[1]);
    };
    assert.ok(value('autoglm_audio_transcriptions_total', 'transcriptions') >= 8);
    assert.ok(value('autoglm_audio_transcriptions_total', 'translations') >= 1);
    assert.ok(value('autoglm_audio_transcriptions_total', 'chat') >= 2);
    assert.ok(value('autoglm_audio_seconds_total', 'transcriptions') >= 8 * 2.5);
  });
});

describe('speech: a server without --asr-model', () => {
  let srv;
  before(async () => { srv = await startServer([]); });
  after(async () => { await srv?.stop(); });

  test('audio endpoints and input_audio parts answer 400 naming --asr-model', async () => {
    assertError(await postForm(srv.base, [wavPart()]), 400, { messageIncludes: '--asr-model' });
    assertError(await postForm(srv.base, [wavPart()], { pathname: '/v1/audio/translations' }), 400,
      { messageIncludes: '--asr-model' });
    const r = await rawRequest(srv.base, { body: { model: MODEL, max_tokens: 1, messages: [{ role: 'user', content: [
      { type: 'input_audio', input_audio: { data: fs.readFileSync(WAV).toString('base64'), format: 'wav' } }] }] } });
    assertError(r, 400, { param: 'messages[0].content[0].type', messageIncludes: '--asr-model' });
    const models = await rawRequest(srv.base, { method: 'GET', path: '/v1/models' });
    assert.deepEqual(models.json.data.map((m) => m.id), [MODEL]);
  });
});

describe('speech: autoglm transcribe', () => {
  before(() => { writeWhisperModel(); });
  after(() => { if (tmpRoot) fs.rmSync(tmpRoot, { recursive: true, force: true }); });

  test('prints the response formats; bad files fail with a message naming them', () => {
    const run = (...args) => spawnSync(BIN, ['transcribe', '-m', asrDir, '-t', '2', ...args], { encoding: 'utf8' });
    const srt = run(WAV, '--response-format', 'srt');
    assert.equal(srt.status, 0, srt.stderr);
    assert.match(srt.stdout, /^1\n\d\d:\d\d:\d\d,\d{3} --> \d\d:\d\d:\d\d,\d{3}\n/);
    const verbose = run(path.join(AUDIO, 'speech.flac'), '--response-format', 'verbose_json', '--language', 'en');
    assert.equal(verbose.status, 0, verbose.stderr);
    const j = JSON.parse(verbose.stdout);
    assert.equal(j.language, 'english');
    assert.equal(j.task, 'transcribe');
    const text = run(WAV);
    assert.equal(text.status, 0, text.stderr);
    assert.ok(text.stdout.endsWith('\n'));
    const garbage = path.join(AUDIO, 'garbage.bin');
    const bad = run(garbage);
    assert.equal(bad.status, 1);
    assert.ok(bad.stderr.includes(garbage), bad.stderr);
    const badFormat = run(WAV, '--response-format', 'xml');
    assert.equal(badFormat.status, 1);
    assert.ok(badFormat.stderr.includes('response_format'), badFormat.stderr);
  });
});
