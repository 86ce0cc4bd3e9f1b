// tests/kernels/cases_attention.cpp: ATTENTION_PAGED over F32/F16/BF16/Q8_0 caches (several sequences with
// different n_past in one batch, shuffled block tables, GQA/MQA/MHA, head dims off the vector width, odd block
// sizes, contexts of 2000; every cache slot no sequence may read holds NaN, so a stray read shows; batches of
// decodes only, which CUDA runs through its one-launch decode kernel, at contexts around the block and tile sizes
// and up to 4k; on CUDA, block ids outside the cache and contexts past the block table must be reported),
// ATTENTION_DENSE (F32; segments of one frame each, sizes around the 48-row query block, the 16-key panel and the 512-key V tile,
// rows outside every segment left alone; from 1024 rows CUDA's bf16 tensor-core kernels at a bf16 bound) and POS_EMBED_BICUBIC (F32; up- and down-sampled grids).
#include <algorithm>
#include <cmath>
#include <memory>
#include <numeric>

#include "core/error.h"
#include "harness.h"
#include "kernels/cpu/attention_amx.h"
#include "kernels/cpu/attention_avx512bf16.h"
#include "ops/ops.h"
#include "reference.h"

namespace autoglm::harness {

namespace {

using vecd = std::vector<double>;

struct paged_cfg {
  int64_t heads, kv_heads, hd, block;
  std::vector<std::pair<int64_t, int64_t>> seqs;  // (n_past, n_new)
  bool perf;
  // Malformed input a GPU backend must report at the next synchronize (the CPU aborts on it: AG_CHECK): 1 = a block
  // id of the longest sequence's table outside the cache, 2 = that sequence's n_past beyond its block table.
  int bad = 0;
};

std::string paged_name(const paged_cfg& c) {
  std::string s = "heads=" + std::to_string(c.heads) + "/" + std::to_string(c.kv_heads) + " hd=" + std::to_string(c.hd) +
                  " block=" + std::to_string(c.block) + " seqs(past+new)=";
  for (size_t i = 0; i < c.seqs.size(); ++i) {
    if (i) s += ',';
    s += std::to_string(c.seqs[i].first) + "+" + std::to_string(c.seqs[i].second);
  }
  if (c.bad == 1) s += " bad block id";
  if (c.bad == 2) s += " context past its table";
  return s;
}

instance make_paged(exec_context& ctx, dtype t, const paged_cfg& c, const std::string& name) {
  rng r(seed_of(name + dtype_name(t)));
  const int64_t n_seqs = int64_t(c.seqs.size()), kw = c.kv_heads * c.hd, qw = c.heads * c.hd;
  // Blocks: every sequence gets its own, drawn from a shuffled pool with spares, so tables are not identity.
  std::vector<int64_t> n_blk(static_cast<size_t>(n_seqs));
  int64_t total_blocks = 3, max_blk = 0, n_rows = 0;
  for (int64_t s = 0; s < n_seqs; ++s) {
    n_blk[size_t(s)] = (c.seqs[size_t(s)].first + c.seqs[size_t(s)].second + c.block - 1) / c.block;
    total_blocks += n_blk[size_t(s)];
    max_blk = std::max(max_blk, n_blk[size_t(s)]);
    n_rows += c.seqs[size_t(s)].second;
  }
  std::vector<int32_t> ids(static_cast<size_t>(total_blocks));
  std::iota(ids.begin(), ids.end(), 0);
  std::shuffle(ids.begin(), ids.end(), r.gen);
  const int64_t width = max_blk + 1;  // one unused entry per row: a kernel must not need it
  std::vector<int32_t> tables(size_t(n_seqs * width), -1), info(size_t(n_seqs * 3));
  std::vector<float> kcache(size_t(total_blocks * c.block * kw), NAN), vcache = kcache;
  std::vector<std::vector<float>> khist(static_cast<size_t>(n_seqs)), vhist(static_cast<size_t>(n_seqs));
  size_t next = 0;
  int64_t row = n_rows;
  for (int64_t s = 0; s < n_seqs; ++s) {
    const auto [past, fresh] = c.seqs[size_t(s)];
    const int64_t len = past + fresh;
    khist[size_t(s)] = decode(t, encode_rows(t, r.normal(size_t(len * kw)), c.hd));
    vhist[size_t(s)] = decode(t, encode_rows(t, r.normal(size_t(len * kw)), c.hd));
    for (int64_t b = 0; b < n_blk[size_t(s)]; ++b) tables[size_t(s * width + b)] = ids[next++];
    for (int64_t p = 0; p < len; ++p) {
      const int64_t slot = int64_t(tables[size_t(s * width + p / c.block)]) * c.block + p % c.block;
      std::copy_n(khist[size_t(s)].begin() + p * kw, kw, kcache.begin() + slot * kw);
      std::copy_n(vhist[size_t(s)].begin() + p * kw, kw, vcache.begin() + slot * kw);
    }
    row -= fresh;  // sequences' rows laid out in reverse order: the kernel must follow seq_info
    info[size_t(s * 3)] = int32_t(row);
    info[size_t(s * 3 + 1)] = int32_t(fresh);
    info[size_t(s * 3 + 2)] = int32_t(past);
  }
  if (c.bad) {
    const size_t longest = size_t(std::max_element(n_blk.begin(), n_blk.end()) - n_blk.begin());
    if (c.bad == 1) tables[longest * size_t(width) + size_t(n_blk[longest] / 2)] = int32_t(total_blocks + 5);
    else info[longest * 3 + 2] = int32_t(width * c.block);
  }
  // q inside a fused [rows, q | k | v] buffer, as the decoder's qkv projection leaves it.
  const auto qkv = r.normal(size_t(n_rows * (qw + 2 * kw)));
  padded fused = make_padded(ctx, dtype::F32, n_rows, qw + 2 * kw, 0, qkv);
  tensor q = fused.t.cols_view(0, qw);
  padded ov = make_padded(ctx, dtype::F32, n_rows, qw, 5);
  const std::vector<int64_t> cshape = {total_blocks, c.block, c.kv_heads, c.hd};
  paged_kv_layer kv;
  kv.k = upload(ctx, t, cshape, encode_rows(t, kcache, c.hd)).t;
  kv.v = upload(ctx, t, cshape, encode_rows(t, vcache, c.hd)).t;
  paged_batch batch;
  batch.n_seqs = int32_t(n_seqs);
  for (const auto& s : c.seqs) batch.max_context = std::max<int32_t>(batch.max_context, int32_t(s.first + s.second));
  batch.seq_info = upload_i32(ctx, {n_seqs, 3}, info);
  batch.block_tables = upload_i32(ctx, {n_seqs, width}, tables);
  const float scale = 1.0f / std::sqrt(float(c.hd));
  instance inst;
  if (c.bad) {
    inst.output = [] { return std::vector<uint8_t>(); };  // nothing defined to compare
    // The CPU checks these indices with AG_CHECK, which aborts (a broken invariant of the runtime): nothing to run
    // there. CUDA flags them in the kernel (the device's indices are not checked on the host) and the next
    // synchronize throws an error naming them.
    if (ctx.dev().kind == device_kind::CPU) {
      inst.run = [] {};
      inst.check = [] { return std::string(); };
      return inst;
    }
    auto what = std::make_shared<std::string>();
    inst.run = [&ctx, q, kv, batch, ov, c, scale, what]() mutable {
      what->clear();
      try {
        ops::attention_paged(ctx, q, kv, batch, int32_t(c.heads), int32_t(c.kv_heads), int32_t(c.hd), scale, ov.t);
        ops::synchronize(ctx);
      } catch (const error& e) {
        *what = e.what();
      }
    };
    inst.check = [what, want = std::string(c.bad == 1 ? "block id" : "block table")]() -> std::string {
      if (what->find(want) != std::string::npos) return "";
      return "expected an error naming '" + want + "', got " + (what->empty() ? "none" : "'" + *what + "'");
    };
    return inst;
  }
  inst.run = [&ctx, q, kv, batch, ov, c, scale]() mutable {
    ops::attention_paged(ctx, q, kv, batch, int32_t(c.heads), int32_t(c.kv_heads), int32_t(c.hd), scale, ov.t);
  };
  inst.output = [&ctx, ov] { return download(ctx, ov.buf.t); };
  inst.check = [&ctx, ov, c, qkv, qw, kw, n_rows, info, khist, vhist, scale, t] {
    vecd ref(size_t(n_rows * qw));
    for (size_t s = 0; s < c.seqs.size(); ++s) {
      const int64_t first = info[s * 3], fresh = c.seqs[s].second;
      std::vector<float> qs(static_cast<size_t>(fresh * qw));
      for (int64_t i = 0; i < fresh; ++i)
        std::copy_n(qkv.begin() + (first + i) * (qw + 2 * kw), qw, qs.begin() + i * qw);
      const vecd o = ref::attention_causal(qs, khist[s], vhist[s], fresh, c.seqs[s].first, c.heads, c.kv_heads, c.hd, scale);
      std::copy(o.begin(), o.end(), ref.begin() + first * qw);
    }
    // CUDA takes sequences of 128+ new rows through bf16 GEMMs (harness.cpp's bound for this op); a batch without
    // one runs F32 kernels only (the flash tile, the decode kernel) and is held to the F32 bound.
    const bool prefill_chunk = std::any_of(c.seqs.begin(), c.seqs.end(), [](const auto& s) { return s.second >= 128; });
    const double tol = ctx.dev().kind == device_kind::CUDA && !prefill_chunk
                           ? tolerance(op_id::ATTENTION_PAGED, dtype::F32)
                           : tolerance(op_id::ATTENTION_PAGED, t);
    return check_output(ctx, ov, ref, tol);
  };
  for (const auto& [past, fresh] : c.seqs) {
    // Each new token reads its whole context once per KV head (the group shares it) and does q.k and p.v.
    for (int64_t i = 0; i < fresh; ++i) inst.flops += 4.0 * double(past + i + 1) * double(qw);
    inst.bytes += double(past + fresh) * 2.0 * double(dtype_row_bytes(t, kw));
  }
  return inst;
}

void add_paged_cases(std::vector<test_case>& out) {
  const std::vector<paged_cfg> cfgs = {
      {4, 2, 8, 16, {{0, 1}}, false},
      {6, 2, 64, 16, {{37, 1}, {0, 7}, {15, 20}}, false},
      {3, 1, 80, 5, {{4, 3}, {11, 1}}, false},
      {2, 2, 16, 7, {{0, 30}}, false},
      {8, 2, 128, 16, {{2000, 1}, {1500, 3}}, false},
      // Decode shapes that take the position-split path on 3 threads (fewer (row, KV head) pairs than threads):
      // a head group that is not a multiple of the 2-head P.V block, a head_dim with a scalar tail, a long context.
      {3, 1, 20, 16, {{77, 1}, {3, 1}}, false},
      {8, 2, 128, 16, {{2500, 1}}, false},
      // Head dims of one and of three 32-blocks (what a Q8_0 cache needs), odd block sizes.
      {3, 1, 32, 5, {{4, 3}, {11, 1}}, false},
      {4, 2, 96, 7, {{20, 2}, {0, 5}}, false},
      // Prefill rows (8+: P.V walks the positions in runs of 64) over contexts of several runs, a block size (5) the
      // runs cut mid-block, an odd head group (3 per KV head).
      {6, 2, 32, 5, {{70, 9}, {130, 12}}, false},
      // The 9B decoder (32 query heads over 2 KV heads, head_dim 128): one decode at 4k, a batch of 8 decodes,
      // and a 128-token prefill chunk after 1024 cached tokens.
      {32, 2, 128, 16, {{4095, 1}}, true},
      {32, 2, 128, 16, {{1000, 1}, {1100, 1}, {1200, 1}, {1300, 1}, {1400, 1}, {1500, 1}, {1600, 1}, {1700, 1}}, true},
      {32, 2, 128, 16, {{1024, 128}}, true},
      // Batches of decodes only (CUDA: attention_decode.cu where head_dim is 64 or 128 and a KV head has at most 16
      // query heads, the flash kernel otherwise). GLM's 16 heads per KV head at contexts 1, 15, 16, 17 (around the
      // block), 64/65 (around the kernel's tile), 4001 and 4096 (a single decode splits into ~64 blocks merged in
      // two levels); several sequences of mixed lengths (some one split, some many); groups of 1, 3, 4 and 16, odd
      // block sizes, head_dim 64; head_dim 80 (the flash kernel's).
      {32, 2, 128, 16, {{0, 1}}, false},
      {32, 2, 128, 16, {{14, 1}}, false},
      {32, 2, 128, 16, {{15, 1}}, false},
      {32, 2, 128, 16, {{16, 1}}, false},
      {32, 2, 128, 16, {{63, 1}, {64, 1}}, false},
      {32, 2, 128, 16, {{4000, 1}}, false},
      {32, 2, 128, 16, {{4095, 1}}, false},
      {32, 2, 128, 16, {{0, 1}, {14, 1}, {16, 1}, {1000, 1}, {4100, 1}, {700, 1}}, false},
      {16, 1, 128, 7, {{2046, 1}, {130, 1}}, false},
      {4, 4, 128, 16, {{300, 1}, {16, 1}, {1, 1}}, false},
      {8, 2, 64, 16, {{2500, 1}, {64, 1}, {62, 1}}, false},
      {12, 4, 64, 5, {{77, 1}, {3, 1}, {200, 1}}, false},
      {16, 16, 64, 16, std::vector<std::pair<int64_t, int64_t>>(20, {99, 1}), false},
      {32, 2, 80, 16, {{700, 1}, {3, 1}}, false},
      // Malformed batches of decodes: a block id outside the cache (one long decode split many ways; three
      // sequences), a context longer than the block table.
      {32, 2, 128, 16, {{2999, 1}}, false, 1},
      {8, 2, 64, 16, {{40, 1}, {300, 1}, {5, 1}}, false, 1},
      {32, 2, 128, 16, {{40, 1}, {300, 1}}, false, 2},
  };
  for (dtype t : {dtype::F32, dtype::F16, dtype::BF16, dtype::Q8_0})
    for (const paged_cfg& cfg : cfgs) {
      if (dtype_is_block(t) && cfg.hd % 32) continue;  // a Q8_0 cache holds whole 32-blocks per head row
      test_case c;
      c.op = op_id::ATTENTION_PAGED;
      c.key = t;
      c.perf = cfg.perf;
      c.stream = cfg.perf && std::all_of(cfg.seqs.begin(), cfg.seqs.end(), [](const auto& q) { return q.second == 1; });
      c.name = paged_name(cfg);
      c.make = [t, cfg, name = c.name](exec_context& ctx) { return make_paged(ctx, t, cfg, name); };
      out.push_back(std::move(c));
    }
}

struct dense_cfg {
  int64_t n, heads, hd;
  std::vector<int32_t> segments;
  bool perf;
};

void add_dense_cases(std::vector<test_case>& out) {
  const std::vector<dense_cfg> cfgs = {
      {1, 1, 16, {0, 1}, false},
      {100, 2, 24, {0, 100}, false},
      {130, 3, 32, {0, 5, 53, 54, 130}, false},
      {600, 2, 80, {0, 600}, false},
      {45, 2, 16, {3, 40}, false},
      // From 1024 rows CUDA runs its tensor-core kernel (the mma.sync flash kernel at head_dim 64 and 128): several
      // segments whose lengths are not multiples of its 64-key tiles or 128-row blocks, rows outside all of them.
      {1500, 3, 128, {0, 577, 1300, 1500}, false},
      {2100, 2, 64, {9, 1033, 2090}, false},
      // One 32x32-patch frame, a 48x48 one and a 1080x2400 screenshot's 78x172 through the 9B vision tower's 12
      // heads of 128.
      {1024, 12, 128, {0, 1024}, true},
      {2304, 12, 128, {0, 2304}, true},
      {13416, 12, 128, {0, 13416}, true},
  };
  for (const dense_cfg& cfg : cfgs) {
    test_case c;
    c.op = op_id::ATTENTION_DENSE;
    c.key = dtype::F32;
    c.perf = cfg.perf;
    c.gpu_sized = cfg.n >= 1024;
    c.name = "n=" + std::to_string(cfg.n) + " heads=" + std::to_string(cfg.heads) + " hd=" + std::to_string(cfg.hd) +
             " segments=";
    for (size_t i = 0; i < cfg.segments.size(); ++i) {
      if (i) c.name += ',';
      c.name += std::to_string(cfg.segments[i]);
    }
    c.make = [cfg, name = c.name](exec_context& ctx) {
      rng r(seed_of(name));
      const int64_t w = cfg.heads * cfg.hd;
      const auto qkv = r.normal(size_t(cfg.n * 3 * w));
      padded fused = make_padded(ctx, dtype::F32, cfg.n, 3 * w, 0, qkv);
      tensor q = fused.t.cols_view(0, w), k = fused.t.cols_view(w, w), v = fused.t.cols_view(2 * w, w);
      padded ov = make_padded(ctx, dtype::F32, cfg.n, w, 3);
      const tensor seg = upload_i32(ctx, {int64_t(cfg.segments.size())}, cfg.segments);
      const float scale = 1.0f / std::sqrt(float(cfg.hd));
      instance inst;
      inst.run = [&ctx, q, k, v, seg, ov, cfg, scale]() mutable {
        ops::attention_dense(ctx, q, k, v, int32_t(cfg.heads), int32_t(cfg.hd), seg, scale, ov.t);
      };
      inst.output = [&ctx, ov] { return download(ctx, ov.buf.t); };
      inst.check = [&ctx, ov, qkv, cfg, w, scale] {
        std::vector<float> q(static_cast<size_t>(cfg.n * w)), k = q, v = q;
        for (int64_t i = 0; i < cfg.n; ++i) {
          std::copy_n(qkv.begin() + i * 3 * w, w, q.begin() + i * w);
          std::copy_n(qkv.begin() + i * 3 * w + w, w, k.begin() + i * w);
          std::copy_n(qkv.begin() + i * 3 * w + 2 * w, w, v.begin() + i * w);
        }
        vecd ref(size_t(cfg.n * w), double(k_sentinel));  // rows outside every segment stay untouched
        for (size_t s = 0; s + 1 < cfg.segments.size(); ++s)
          ref::attention_block(q, k, v, cfg.segments[s], cfg.segments[s + 1], cfg.heads, cfg.hd, scale, ref);
        // CUDA from 1024 rows: Q, K, V and the softmax weights rounded to bf16 (kernels/cuda/attention_dense.cu),
        // the bf16 bound of tests/cuda's tensor-core attention; everything else the F32 bound.
        // The CPU's AMX and AVX-512 BF16 paths (where the CPU has them) round the same operands for segments of
        // 1024 rows and more.
        bool cpu_bf16 = false;
        for (size_t s = 0; s + 1 < cfg.segments.size(); ++s) {
          const int64_t len = cfg.segments[s + 1] - cfg.segments[s];
          cpu_bf16 = cpu_bf16 || cpu::attention_dense_uses_amx(len, cfg.hd) ||
                     cpu::attention_dense_uses_avx512bf16(len, cfg.hd);
        }
        const bool bf16 = (ctx.dev().kind == device_kind::CUDA && cfg.n >= 1024) ||
                          (ctx.dev().kind == device_kind::CPU && cpu_bf16);
        return check_output(ctx, ov, ref, bf16 ? 2e-2 : tolerance(op_id::ATTENTION_DENSE, dtype::F32));
      };
      for (size_t s = 0; s + 1 < cfg.segments.size(); ++s) {
        const double len = cfg.segments[s + 1] - cfg.segments[s];
        inst.flops += 4.0 * len * len * double(w);
      }
      return inst;
    };
    out.push_back(std::move(c));
  }
}

void add_pos_embed_cases(std::vector<test_case>& out) {
  struct cfg { int32_t g; int64_t d; int32_t gh, gw; bool subset; };
  for (const cfg s : {cfg{6, 13, 4, 6, false}, cfg{16, 32, 8, 24, false}, cfg{4, 5, 12, 2, true}, cfg{3, 8, 1, 1, false}}) {
    test_case c;
    c.op = op_id::POS_EMBED_BICUBIC;
    c.key = dtype::F32;
    c.name = "table=" + std::to_string(s.g) + "^2 d=" + std::to_string(s.d) + " grid=" + std::to_string(s.gh) + "x" +
             std::to_string(s.gw) + (s.subset ? " random patches" : "");
    c.make = [s, name = c.name](exec_context& ctx) {
      rng r(seed_of(name));
      const auto table = r.normal(size_t(int64_t(s.g) * s.g * s.d));
      std::vector<int32_t> ph, pw;
      for (int32_t h = 0; h < s.gh; ++h)
        for (int32_t w = 0; w < s.gw; ++w)
          if (!s.subset || r.integer(0, 2) == 0) ph.push_back(h), pw.push_back(w);
      const int64_t n = int64_t(ph.size());
      std::vector<int32_t> pos(ph);
      pos.insert(pos.end(), pw.begin(), pw.end());
      const tensor tt = upload_f(ctx, dtype::F32, {int64_t(s.g) * s.g, s.d}, table);
      const tensor pt = upload_i32(ctx, {2, n}, pos);
      padded ov = make_padded(ctx, dtype::F32, n, s.d, 2);
      instance inst;
      inst.run = [&ctx, tt, pt, ov, s]() mutable { ops::pos_embed_bicubic(ctx, tt, s.g, s.gh, s.gw, pt, ov.t); };
      inst.output = [&ctx, ov] { return download(ctx, ov.buf.t); };
      inst.check = [&ctx, ov, table, s, ph, pw] {
        return check_output(ctx, ov, ref::pos_embed_bicubic(table, s.g, s.d, s.gh, s.gw, ph, pw),
                            tolerance(op_id::POS_EMBED_BICUBIC, dtype::F32));
      };
      return inst;
    };
    out.push_back(std::move(c));
  }
}

}  // namespace

void add_attention_cases(std::vector<test_case>& out) {
  add_paged_cases(out);
  add_dense_cases(out);
  add_pos_embed_cases(out);
}

}  // namespace autoglm::harness
