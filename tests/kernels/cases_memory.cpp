// tests/kernels/cases_memory.cpp: data movement, checked bit for bit against the reference rounding:
// EMBEDDING (F32/F16/BF16 tables and every GGUF block type, repeated and boundary ids), COPY (every pair of
// F32/F16/BF16/I32 over contiguous, transposed, 4-D permuted, the vision 2x2-merge permute, reshaped and strided
// layouts, F16 overflow and I32 truncation included) and KV_STORE (F32/F16/BF16 caches, odd block sizes and head
// dims, and Q8_0 caches with ggml's rounding per 32 of a head row; padding slots, k/v as views of a fused buffer;
// every untouched slot must keep its old bytes), and ROPE_KV_STORE (the rotation against the double reference and
// the cache bit for bit against the rounding of the rotated rows).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "harness.h"
#include "ops/ops.h"
#include "reference.h"

namespace autoglm::harness {

namespace {

using vecd = std::vector<double>;

void add_embedding_cases(std::vector<test_case>& out) {
  struct shape { int64_t rows, d, n; int64_t pad; bool perf; };
  for (dtype t : {dtype::F32, dtype::F16, dtype::BF16})
    for (const shape s : {shape{50, 13, 7, 0, false}, shape{1000, 64, 1, 3, false}, shape{300, 256, 40, 0, false},
                          shape{4096, 4096, 256, 0, true}}) {
      test_case c;
      c.op = op_id::EMBEDDING;
      c.key = t;
      c.perf = s.perf;
      c.name = "rows=" + std::to_string(s.rows) + " d=" + std::to_string(s.d) + " n=" + std::to_string(s.n) +
               (s.pad ? " strided" : "");
      c.make = [t, s, name = c.name](exec_context& ctx) {
        rng r(seed_of(name + dtype_name(t)));
        // The large table gets a pattern instead of 16M normal draws.
        std::vector<float> table;
        if (s.perf) {
          table.resize(size_t(s.rows * s.d));
          for (size_t i = 0; i < table.size(); ++i) table[i] = float(int64_t(i % 977) - 488) / 64.0f;
        } else {
          table = r.normal(size_t(s.rows * s.d));
        }
        table = decode(t, encode(t, table));
        std::vector<int32_t> ids(static_cast<size_t>(s.n));
        for (auto& id : ids) id = r.integer(0, int32_t(s.rows - 1));
        ids[0] = int32_t(s.rows - 1);
        if (s.n > 2) ids[1] = 0, ids[2] = ids[0];
        const tensor tt = upload_f(ctx, t, {s.rows, s.d}, table);
        const tensor it = upload_i32(ctx, {s.n}, ids);
        padded ov = make_padded(ctx, dtype::F32, s.n, s.d, s.pad);
        instance inst;
        inst.run = [&ctx, tt, it, ov]() mutable { ops::embedding(ctx, tt, it, ov.t); };
        inst.output = [&ctx, ov] { return download(ctx, ov.buf.t); };
        inst.check = [&ctx, ov, table, ids, s] {
          vecd ref(size_t(s.n * s.d));
          for (int64_t i = 0; i < s.n; ++i)
            for (int64_t j = 0; j < s.d; ++j) ref[size_t(i * s.d + j)] = table[size_t(ids[size_t(i)] * s.d + j)];
          return check_output(ctx, ov, ref, 0.0);
        };
        inst.bytes = double(s.n * s.d) * (double(dtype_size(t)) + 4.0);
        return inst;
      };
      out.push_back(std::move(c));
    }
}

// Tables in a GGUF block type (a community file's token_embd): each gathered row is the dequantization of its
// blocks, bit for bit (the reference decodes the same bytes with core's dequantizer). Rows of one block, several
// and the 9B width; the perf case gathers a 512-token prompt from a [16384, 4096] table.
void add_block_embedding_cases(std::vector<test_case>& out) {
  struct shape { int64_t rows, blocks, n, pad; bool perf; };
  for (dtype t : {dtype::Q8_0, dtype::Q4_0, dtype::Q4_1, dtype::Q5_0, dtype::Q5_1, dtype::Q4_K, dtype::Q5_K,
                  dtype::Q6_K})
    for (const shape s : {shape{50, 1, 7, 0, false}, shape{1000, 3, 1, 3, false}, shape{300, 2, 40, 0, false},
                          shape{16384, 4096 / int64_t(dtype_block_elems(t)), 512, 0, true}}) {
      const int64_t d = s.blocks * int64_t(dtype_block_elems(t));
      test_case c;
      c.op = op_id::EMBEDDING;
      c.key = t;
      c.perf = s.perf;
      c.name = "rows=" + std::to_string(s.rows) + " d=" + std::to_string(d) + " n=" + std::to_string(s.n) +
               (s.pad ? " strided" : "");
      c.make = [t, s, d, name = c.name](exec_context& ctx) {
        rng r(seed_of(name + dtype_name(t)));
        std::vector<uint8_t> bytes;
        if (s.perf) {  // random blocks with sane f16 scales: quantizing 67M values would dominate the run
          bytes.resize(dtype_row_bytes(t, d) * size_t(s.rows));
          for (size_t i = 0; i + 8 <= bytes.size(); i += 8) {
            const uint64_t v = r.gen();
            std::memcpy(bytes.data() + i, &v, 8);
          }
          const uint16_t h = f32_to_f16(0.01f);
          const size_t bb = dtype_block_bytes(t), at = t == dtype::Q6_K ? 208 : 0;
          for (size_t off = 0; off < bytes.size(); off += bb) {
            std::memcpy(bytes.data() + off + at, &h, 2);
            if (t == dtype::Q4_K || t == dtype::Q5_K || t == dtype::Q4_1 || t == dtype::Q5_1)
              std::memcpy(bytes.data() + off + 2, &h, 2);
          }
        } else {
          bytes = encode_rows(t, r.normal(size_t(s.rows * d)), d);
        }
        std::vector<int32_t> ids(static_cast<size_t>(s.n));
        for (auto& id : ids) id = r.integer(0, int32_t(s.rows - 1));
        ids[0] = int32_t(s.rows - 1);
        if (s.n > 2) ids[1] = 0, ids[2] = ids[0];
        const tensor tt = upload(ctx, t, {s.rows, d}, bytes).t;
        const tensor it = upload_i32(ctx, {s.n}, ids);
        padded ov = make_padded(ctx, dtype::F32, s.n, d, s.pad);
        instance inst;
        inst.run = [&ctx, tt, it, ov]() mutable { ops::embedding(ctx, tt, it, ov.t); };
        inst.output = [&ctx, ov] { return download(ctx, ov.buf.t); };
        inst.check = [&ctx, ov, bytes, ids, t, d, s] {
          const size_t rb = dtype_row_bytes(t, d);
          vecd ref(size_t(s.n * d));
          std::vector<float> row(static_cast<size_t>(d));
          for (int64_t i = 0; i < s.n; ++i) {
            const std::vector<uint8_t> one(bytes.begin() + ptrdiff_t(size_t(ids[size_t(i)]) * rb),
                                           bytes.begin() + ptrdiff_t(size_t(ids[size_t(i)] + 1) * rb));
            row = decode(t, one);
            for (int64_t j = 0; j < d; ++j) ref[size_t(i * d + j)] = row[size_t(j)];
          }
          return check_output(ctx, ov, ref, 0.0);
        };
        inst.bytes = double(s.n) * (double(dtype_row_bytes(t, d)) + 4.0 * double(d));
        return inst;
      };
      out.push_back(std::move(c));
    }
}

// A layout of a COPY operand over a contiguous buffer of `buffer` elements.
struct layout {
  std::string name;
  std::vector<int64_t> shape, strides;  // strides in elements
  int64_t offset = 0, buffer = 0;
};

// The buffer index of each logical element (row-major over the layout's shape).
std::vector<int64_t> positions(const layout& l) {
  int64_t n = 1;
  for (int64_t d : l.shape) n *= d;
  std::vector<int64_t> pos(static_cast<size_t>(n));
  for (int64_t e = 0; e < n; ++e) {
    int64_t rem = e, p = l.offset;
    for (int i = int(l.shape.size()) - 1; i >= 0; --i) {
      p += (rem % l.shape[size_t(i)]) * l.strides[size_t(i)];
      rem /= l.shape[size_t(i)];
    }
    pos[size_t(e)] = p;
  }
  return pos;
}

layout contiguous(std::vector<int64_t> shape) {
  layout l{"", shape, std::vector<int64_t>(shape.size()), 0, 1};
  for (int i = int(shape.size()) - 1; i >= 0; --i) {
    l.strides[size_t(i)] = l.buffer;
    l.buffer *= shape[size_t(i)];
  }
  return l;
}

// (src, dst) layout pairs with equal element counts.
std::vector<std::pair<layout, layout>> copy_layouts() {
  std::vector<std::pair<layout, layout>> v;
  v.push_back({contiguous({5, 7}), contiguous({5, 7})});
  v.back().first.name = "contiguous [5,7]";
  // Transpose: a [4, 6] buffer read as [6, 4].
  v.push_back({{"transpose [6,4]", {6, 4}, {1, 6}, 0, 24}, contiguous({6, 4})});
  // 4-D permute (0, 3, 1, 2) of a contiguous [2, 3, 4, 5].
  v.push_back({{"permute [2,5,3,4]", {2, 5, 3, 4}, {60, 1, 20, 5}, 0, 120}, contiguous({2, 5, 3, 4})});
  // The vision 2x2 merge: rows b*4+k of x [n, d] become merged[b][c][k] (conv input ordered (c, hm, wm)).
  v.push_back({{"merge 2x2 [6,9,4]", {6, 9, 4}, {36, 1, 9}, 0, 216}, contiguous({6, 9, 4})});
  // Different shapes, same element order.
  v.push_back({contiguous({6, 10}), contiguous({4, 15})});
  v.back().first.name = "reshape [6,10]->[4,15]";
  // A column view on each side.
  v.push_back({{"cols [3,5] of [3,8] -> cols of [3,9]", {3, 5}, {8, 1}, 2, 24}, {"", {3, 5}, {9, 1}, 3, 27}});
  v.push_back({contiguous({1}), contiguous({1, 1})});
  v.back().first.name = "one element";
  v.push_back({contiguous({3, 20000}), contiguous({3, 20000})});
  v.back().first.name = "contiguous [3,20000]";
  return v;
}

void add_copy_cases(std::vector<test_case>& out) {
  const dtype types[] = {dtype::F32, dtype::F16, dtype::BF16, dtype::I32};
  for (dtype st : types)
    for (dtype dt : types)
      for (const auto& [src, dst] : copy_layouts()) {
        test_case c;
        c.op = op_id::COPY;
        c.key = st;
        c.name = std::string(dtype_name(st)) + "->" + dtype_name(dt) + " " + src.name;
        c.make = [st, dt, src, dst, name = c.name](exec_context& ctx) {
          rng r(seed_of(name));
          std::vector<float> base(static_cast<size_t>(src.buffer));
          if (st == dtype::I32) {
            for (auto& x : base) x = float(r.integer(-3000, 3000));
          } else {
            base = r.normal(base.size(), 100.0f);
            // Values that overflow F16, round at F16's top, or truncate toward zero in I32.
            const float special[] = {70000.0f, -1e6f, 0.5f, -0.5f, 65519.0f, 65520.0f, -2.75f, 3e9f};
            for (size_t i = 0; i < std::size(special) && i < base.size(); ++i) base[i] = special[i];
          }
          base = decode(st, encode(st, base));
          const dbuf sb = upload(ctx, st, {src.buffer}, encode(st, base));
          const dbuf db = upload(ctx, dt, {dst.buffer}, encode(dt, std::vector<float>(size_t(dst.buffer), k_sentinel)));
          tensor sv = view(sb, src.offset, src.shape, src.strides);
          tensor dv = view(db, dst.offset, dst.shape, dst.strides);
          instance inst;
          inst.run = [&ctx, sv, dv]() mutable { ops::copy(ctx, sv, dv); };
          inst.output = [&ctx, db] { return download(ctx, db.t); };
          inst.check = [&ctx, db, dt, base, src, dst] {
            const std::vector<float> got = decode(dt, download(ctx, db.t));
            vecd ref(got.size(), double(k_sentinel));
            const auto sp = positions(src), dp = positions(dst);
            for (size_t e = 0; e < sp.size(); ++e) ref[size_t(dp[e])] = ref::round_to(dt, base[size_t(sp[e])]);
            // I32 results are read back through float: compare at that precision (exact for |v| < 2^24).
            if (dt == dtype::I32)
              for (double& x : ref) x = double(float(x));
            return verdict("destination buffer", compare(got, ref), 0.0);
          };
          return inst;
        };
        out.push_back(std::move(c));
      }
}

void add_kv_store_cases(std::vector<test_case>& out) {
  struct shape { int64_t n_blocks, block, kv_heads, hd, n; };
  for (dtype t : {dtype::F32, dtype::F16, dtype::BF16, dtype::Q8_0})
    for (const shape s : {shape{6, 16, 2, 8, 9}, shape{5, 5, 1, 80, 17}, shape{3, 16, 2, 64, 1}, shape{40, 16, 4, 128, 300},
                          shape{4, 3, 3, 32, 7}}) {
      if (dtype_is_block(t) && s.hd % 32) continue;  // a Q8_0 cache holds whole 32-blocks per head row
      test_case c;
      c.op = op_id::KV_STORE;
      c.key = t;
      c.name = "blocks=" + std::to_string(s.n_blocks) + "x" + std::to_string(s.block) + " kv_heads=" +
               std::to_string(s.kv_heads) + " hd=" + std::to_string(s.hd) + " rows=" + std::to_string(s.n);
      c.make = [t, s, name = c.name](exec_context& ctx) {
        rng r(seed_of(name + dtype_name(t)));
        const int64_t kw = s.kv_heads * s.hd, capacity = s.n_blocks * s.block;
        // Distinct slots in random order; every fifth row is padding (-1).
        std::vector<int32_t> all(static_cast<size_t>(capacity));
        std::iota(all.begin(), all.end(), 0);
        std::shuffle(all.begin(), all.end(), r.gen);
        std::vector<int32_t> slots(all.begin(), all.begin() + s.n);
        for (size_t i = 4; i < slots.size(); i += 5) slots[i] = -1;
        // k and v inside one [n, q | k | v] buffer, q one head wide.
        const auto qkv = r.normal(size_t(s.n * (s.hd + 2 * kw)), 2.0f);
        padded fused = make_padded(ctx, dtype::F32, s.n, s.hd + 2 * kw, 0, qkv);
        const tensor kt = fused.t.cols_view(s.hd, kw), vt = fused.t.cols_view(s.hd + kw, kw);
        const std::vector<int64_t> cshape = {s.n_blocks, s.block, s.kv_heads, s.hd};
        const std::vector<float> fill(size_t(capacity * kw), k_sentinel);
        const std::vector<uint8_t> fill_bytes = encode_rows(t, fill, s.hd);
        paged_kv_layer kv;
        kv.k = upload(ctx, t, cshape, fill_bytes).t;
        kv.v = upload(ctx, t, cshape, fill_bytes).t;
        const tensor st = upload_i32(ctx, {s.n}, slots);
        instance inst;
        inst.run = [&ctx, kv, kt, vt, st] { ops::kv_store(ctx, kv, kt, vt, st); };
        inst.output = [&ctx, kv] {
          std::vector<uint8_t> b = download(ctx, kv.k), v = download(ctx, kv.v);
          b.insert(b.end(), v.begin(), v.end());
          return b;
        };
        inst.check = [&ctx, kv, t, s, kw, slots, qkv, capacity, fill_bytes] {
          std::string problems;
          const std::vector<float> untouched = decode(t, fill_bytes);  // the sentinel as the cache dtype holds it
          for (int which = 0; which < 2; ++which) {
            const std::vector<float> got = decode(t, download(ctx, which ? kv.v : kv.k));
            vecd ref(untouched.begin(), untouched.end());
            for (int64_t i = 0; i < s.n; ++i) {
              if (slots[size_t(i)] < 0) continue;
              const float* row = qkv.data() + i * (s.hd + 2 * kw) + s.hd + which * kw;
              // Q8_0 rounds each head's row in blocks of 32 (ggml's rule); the others element by element.
              const vecd q8 = t == dtype::Q8_0 ? ref::round_q8_0(std::vector<float>(row, row + kw)) : vecd{};
              for (int64_t j = 0; j < kw; ++j)
                ref[size_t(slots[size_t(i)] * kw + j)] = t == dtype::Q8_0 ? q8[size_t(j)] : ref::round_to(t, row[j]);
            }
            problems += verdict(which ? "v cache" : "k cache", compare(got, ref), 0.0);
          }
          return problems;
        };
        inst.bytes = double(s.n) * 2.0 * (4.0 * double(kw) + double(dtype_row_bytes(t, kw)));
        return inst;
      };
      out.push_back(std::move(c));
    }
}

// ROPE_KV_STORE over a fused [n, q | k | v] buffer: q and k rotated in place as ROPE_MROPE does (against the
// double reference), and the cache holding exactly the rounding of what the rotation left in k (and of v), as
// KV_STORE would store it: rotation and store must agree bit for bit, whatever the device's sincos.
void add_rope_kv_store_cases(std::vector<test_case>& out) {
  struct shape {
    int64_t n_blocks, block, q_heads, kv_heads, hd, rot, n;
    std::array<int32_t, 3> sections;
    int64_t pad;
  };
  for (dtype t : {dtype::F32, dtype::F16, dtype::BF16, dtype::Q8_0})
    for (const shape& s : {shape{6, 16, 4, 2, 8, 8, 9, {1, 2, 1}, 0}, shape{3, 16, 16, 1, 64, 32, 1, {4, 6, 6}, 5},
                          shape{8, 16, 32, 2, 128, 64, 1, {8, 12, 12}, 0},
                          shape{40, 16, 8, 2, 128, 64, 300, {8, 12, 12}, 256},
                          shape{4, 3, 3, 3, 32, 16, 7, {2, 3, 3}, 0}}) {
      if (dtype_is_block(t) && s.hd % 32) continue;  // a Q8_0 cache holds whole 32-blocks per head row
      test_case c;
      c.op = op_id::ROPE_KV_STORE;
      c.key = t;
      c.name = "blocks=" + std::to_string(s.n_blocks) + "x" + std::to_string(s.block) + " heads=" +
               std::to_string(s.q_heads) + "/" + std::to_string(s.kv_heads) + " hd=" + std::to_string(s.hd) +
               " rot=" + std::to_string(s.rot) + " rows=" + std::to_string(s.n) + (s.pad ? " strided" : "");
      c.make = [t, s, name = c.name](exec_context& ctx) {
        rng r(seed_of(name + dtype_name(t) + "rope_kv"));
        const int64_t kw = s.kv_heads * s.hd, qkw = (s.q_heads + s.kv_heads) * s.hd, width = qkw + kw;
        const int64_t capacity = s.n_blocks * s.block;
        std::vector<int32_t> all(static_cast<size_t>(capacity));
        std::iota(all.begin(), all.end(), 0);
        std::shuffle(all.begin(), all.end(), r.gen);
        std::vector<int32_t> slots(all.begin(), all.begin() + s.n);
        for (size_t i = 4; i < slots.size(); i += 5) slots[i] = -1;  // padding rows: rotated, not stored
        std::vector<int32_t> pos(static_cast<size_t>(3 * s.n));
        for (auto& p : pos) p = r.integer(0, 70000);
        const auto qkv = r.normal(size_t(s.n * width), 2.0f);
        padded fused = make_padded(ctx, dtype::F32, s.n, width, s.pad, qkv);
        const tensor vt = fused.t.cols_view(qkw, kw);
        const std::vector<int64_t> cshape = {s.n_blocks, s.block, s.kv_heads, s.hd};
        const std::vector<uint8_t> fill_bytes =
            encode_rows(t, std::vector<float>(size_t(capacity * kw), k_sentinel), s.hd);
        paged_kv_layer kv;
        kv.k = upload(ctx, t, cshape, fill_bytes).t;
        kv.v = upload(ctx, t, cshape, fill_bytes).t;
        const tensor pt = upload_i32(ctx, {3, s.n}, pos), st = upload_i32(ctx, {s.n}, slots);
        instance inst;
        inst.run = [&ctx, fused, vt, pt, st, kv, s, qkw]() mutable {
          tensor qk = fused.t.cols_view(0, qkw);
          ops::rope_kv_store(ctx, qk, int32_t(s.q_heads), int32_t(s.rot), pt, s.sections, 10000.0f, kv, vt, st);
        };
        inst.output = [&ctx, fused, kv] {
          std::vector<uint8_t> b = download(ctx, fused.buf.t), k = download(ctx, kv.k), v = download(ctx, kv.v);
          b.insert(b.end(), k.begin(), k.end());
          b.insert(b.end(), v.begin(), v.end());
          return b;
        };
        inst.check = [&ctx, fused, kv, t, s, kw, qkw, width, slots, pos, qkv, fill_bytes] {
          vecd ref(qkv.begin(), qkv.end());
          ref::rope_mrope(ref, s.n, width, s.q_heads + s.kv_heads, s.hd, s.rot, pos, s.sections, 10000.0f);
          std::string problems = check_output(ctx, fused, ref, tolerance(op_id::ROPE_MROPE, dtype::F32));
          const std::vector<float> got_x = read_padded(ctx, fused, problems);
          const std::vector<float> untouched = decode(t, fill_bytes);
          for (int which = 0; which < 2; ++which) {
            const std::vector<float> got = decode(t, download(ctx, which ? kv.v : kv.k));
            vecd cache_ref(untouched.begin(), untouched.end());
            for (int64_t i = 0; i < s.n; ++i) {
              if (slots[size_t(i)] < 0) continue;
              const float* row = got_x.data() + i * width + (which ? qkw : qkw - kw);  // rotated k, or v
              const vecd q8 = t == dtype::Q8_0 ? ref::round_q8_0(std::vector<float>(row, row + kw)) : vecd{};
              for (int64_t j = 0; j < kw; ++j)
                cache_ref[size_t(slots[size_t(i)] * kw + j)] =
                    t == dtype::Q8_0 ? q8[size_t(j)] : ref::round_to(t, row[j]);
            }
            problems += verdict(which ? "v cache" : "k cache", compare(got, cache_ref), 0.0);
          }
          return problems;
        };
        inst.bytes = double(s.n) * (8.0 * double(qkw) + 2.0 * (4.0 * double(kw) + double(dtype_row_bytes(t, kw))));
        return inst;
      };
      out.push_back(std::move(c));
    }
}

}  // namespace

void add_memory_cases(std::vector<test_case>& out) {
  add_embedding_cases(out);
  add_block_embedding_cases(out);
  add_copy_cases(out);
  add_kv_store_cases(out);
  add_rope_kv_store_cases(out);
}

}  // namespace autoglm::harness
