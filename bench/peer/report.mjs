// bench/peer/report.mjs: the markdown page of a peer.mjs report: one table row per configuration and engine
// (medians with [min-max] over the repetitions), the autoglm / llama.cpp ratios, and issue 11's targets with
// what each measured (reported, not asserted).

const f = (x, d = 1) => (x == null ? '-' : x.toFixed(d));
const cell = (s, d = 1) => (s == null ? '-' : s.n > 1 ? `${f(s.median, d)} [${f(s.min, d)}-${f(s.max, d)}]` : f(s.median, d));
const ratio = (a, b) => (a && b ? a.median / b.median : null);

export function targets(report) {
  const out = [];
  for (const c of report.configs) {
    const a = c.autoglm, l = c.llama_cpp;
    const name = `${c.dims} ${c.type}`;
    if (c.dims.startsWith('9b') && a.decode_pct_of_triad) {
      const pct = a.decode_pct_of_triad.median;
      out.push({ target: `decode >= 95% of triad (${name})`, measured: `${f(pct)}% (${f(a.decode_GBps.median, 2)} GB/s; triads before the runs ${cell(a.triad_GBps, 1)} GB/s)`, met: pct >= 95 });
    }
    if (c.dims === '1.5b') {
      const r = ratio(a.decode_tokens_per_s, l.decode_tokens_per_s);
      out.push({ target: `decode >= 1.3x llama.cpp (${name})`, measured: `${f(r, 2)}x`, met: r >= 1.3 });
    }
    const p = ratio(a.prefill_tokens_per_s, l.prefill_tokens_per_s);
    out.push({ target: `prefill >= 2x llama.cpp (${name})`, measured: `${f(p, 2)}x`, met: p >= 2 });
    if (c.dims === '9b' && c.type.startsWith('q4')) {
      out.push({ target: `peak RSS < 6 GB incl. ${report.settings.ctx}-position KV, mmap (${name})`, measured: `${f(a.peak_rss_GB.median, 2)} GB`, met: a.peak_rss_GB.median < 6 });
      out.push({ target: `load (process start to ready) < 3 s (${name})`, measured: `${f(a.start_to_ready_s.median, 2)} s (to first token ${f(a.start_to_first_token_s.median, 1)} s)`, met: a.start_to_ready_s.median < 3 });
    }
  }
  for (const s of report.vision?.summary ?? [])
    if (s.size === '1080x2400')
      out.push({ target: 'vision 1080x2400 >= 3x faster than before', measured: `${f(s.speedup, 2)}x (${f(s.before_ms.median / 1e3, 1)} s -> ${f(s.after_ms.median / 1e3, 1)} s)`, met: s.speedup >= 3 });
  return out;
}

export function renderMarkdown(report) {
  const s = report.settings;
  const L = [];
  L.push(`# autoglm vs llama.cpp (node-llama-cpp 3.21.1), ${report.date.slice(0, 10)}`, '');
  L.push(`Machine: ${report.machine.cpus} x ${report.machine.cpu}, ${f(report.machine.mem_GB, 0)} GB. autoglm ${report.commit}. ` +
    `${s.threads} threads, ${s.prompt_tokens}-token prompt, ${s.decode_tokens} decode tokens, ${s.ctx}-position f16 KV, batch ${s.batch}, ` +
    `${s.reps} repetitions ${s.order}; ${s.page_cache}. Random weights, GGUF written by \`autoglm quantize\`, the same file for both.`, '');
  L.push(`STREAM triad (${s.threads} threads, 3 x 512 MiB, best of 10) before, between and after the configurations: ` +
    `${report.triads.map((t) => f(t.triad_GBps_best, 1)).join(', ')} GB/s (read-only ${report.triads.map((t) => f(t.read_GBps_best, 1)).join(', ')}). ` +
    'This VM\'s bandwidth moves with its neighbours, so each engine run also gets a triad (best of 5) just before it, and ' +
    '"% triad" is each run\'s decode GB/s over its own triad (median [min-max] over the runs).', '');
  if (report.note) L.push(`Note: ${report.note}`, '');
  if (report.other_load_at_start?.length) L.push(`Other busy processes at start: ${report.other_load_at_start.join('; ')}`, '');
  L.push('Cells: median [min-max]. GB/s = bytes of the file\'s tensors read per token (all but token_embd) x decode tokens/s. ' +
    'Peak RSS = VmHWM of the process (llama.cpp\'s includes node and node-llama-cpp: ' +
    `${f(report.peer_baseline.memory_at_end.VmHWM_kB / 1e6, 2)} GB with no model). Ready = process start to model and context ` +
    'loaded; load = the engine\'s own create (autoglm) or loadModel + createContext (llama.cpp); first token = ready + prefill.', '');
  L.push('| dims | type | engine | prefill tok/s | decode tok/s | decode GB/s | % triad | peak RSS GB | ready s | load s | first token s |');
  L.push('|---|---|---|---|---|---|---|---|---|---|---|');
  for (const c of report.configs) {
    for (const [name, e] of [['autoglm', c.autoglm], ['llama.cpp', c.llama_cpp]])
      L.push(`| ${c.dims} | ${c.type} | ${name} | ${cell(e.prefill_tokens_per_s)} | ${cell(e.decode_tokens_per_s, 2)} | ` +
        `${cell(e.decode_GBps, 2)} | ${e.decode_pct_of_triad ? cell(e.decode_pct_of_triad, 0) : '-'} | ${cell(e.peak_rss_GB, 2)} | ` +
        `${cell(e.start_to_ready_s, 2)} | ${cell(e.model_load_s, 2)} | ${cell(e.start_to_first_token_s, 1)} |`);
    L.push(`| ${c.dims} | ${c.type} | **ratio** | **${f(ratio(c.autoglm.prefill_tokens_per_s, c.llama_cpp.prefill_tokens_per_s), 2)}x** | ` +
      `**${f(ratio(c.autoglm.decode_tokens_per_s, c.llama_cpp.decode_tokens_per_s), 2)}x** | | | ` +
      `${f(ratio(c.autoglm.peak_rss_GB, c.llama_cpp.peak_rss_GB), 2)}x | | | |`);
  }
  L.push('', 'File sizes (GB) and bytes read per token (GB): ' +
    report.configs.map((c) => `${c.dims} ${c.type} ${f(c.gguf_bytes / 1e9, 2)} / ${f(c.bytes_read_per_token / 1e9, 2)}`).join('; ') + '.', '');
  if (report.vision) {
    const v = report.vision;
    L.push(`## Vision encoder (${v.model}), before (${v.before_bin}) vs after`, '');
    L.push('| size | tokens | before s | after s | speedup |', '|---|---|---|---|---|');
    for (const x of v.summary)
      L.push(`| ${x.size} | ${x.tokens} | ${cell({ ...x.before_ms, median: x.before_ms.median / 1e3, min: x.before_ms.min / 1e3, max: x.before_ms.max / 1e3 }, 2)} | ` +
        `${cell({ ...x.after_ms, median: x.after_ms.median / 1e3, min: x.after_ms.min / 1e3, max: x.after_ms.max / 1e3 }, 2)} | ${f(x.speedup, 2)}x |`);
    L.push('');
  }
  L.push('## Targets (issue 11; reported, not asserted)', '', '| target | measured | met |', '|---|---|---|');
  for (const t of targets(report)) L.push(`| ${t.target} | ${t.measured} | ${t.met ? 'yes' : '**no**'} |`);
  L.push('');
  return L.join('\n');
}
