// model/glm4v/text_decoder.cpp: the decoder forward pass over ops (see text_decoder.h).
#include "model/glm4v/text_decoder.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/error.h"
#include "ops/ops.h"

namespace autoglm::glm4v {

namespace {
// Steps of at most this many new rows (decodes) prefetch each layer's o_proj during its attention (ops::prefetch).
constexpr int64_t k_prefetch_max_rows = 16;
}  // namespace

text_decoder::text_decoder(const text_config& cfg, text_weights weights, const text_shard& shard)
    : cfg_(cfg), w_(std::move(weights)), shard_(shard),
      any_stacked_qkv_(std::any_of(w_.layers.begin(), w_.layers.end(),
                                   [](const text_layer_weights& L) { return !L.qkv_proj.empty(); })) {}

// The step's inputs on the context's device: built once per forward from the batch, read by every layer.
struct text_decoder::step_inputs : prepared_step {
  std::vector<int32_t> host;  // the index arrays in host memory (on the CPU the tensors below point into it)
  std::vector<embedding_span> embeddings;
  int64_t n_out = 0;   // logits rows
  int64_t n = 0;       // new tokens
  tensor ids;          // I32 [n]
  tensor pos;          // I32 [3, n]: t, h, w planes of M-RoPE
  tensor slots;        // I32 [n]: KV cache slot of each new token (-1: a row no sequence owns)
  tensor logits_rows;  // I32 [n_out]: rows that go through the final norm and lm_head
  paged_batch batch;   // seq_info, block tables
};

// The activations of one forward, from the scratch arena, reused by every layer.
struct text_decoder::activations {
  tensor x;     // [n, H] residual stream
  tensor h;     // [n, H] normed input of a block
  tensor q;     // [n, qd]
  tensor k, v;  // [n, kvd]
  tensor qkv;   // [n, qd + 2 kvd] when the layers' q/k/v are stacked
  tensor attn;  // [n, qd]
  tensor tmp;   // [n, H] block output before the residual add
  tensor gu;    // [n, 2I] gate | up
  tensor m;     // [n, I] silu(gate) * up
};

void text_decoder::upload_inputs(exec_context& ctx, const forward_batch& batch, const std::vector<paged_kv_layer>& kv,
                                 int32_t context_bucket, step_inputs& in) const {
  std::vector<int32_t>& host = in.host;
  const int64_t n = batch.n_tokens();
  const int64_t n_out = int64_t(batch.logits_rows.size());
  const int32_t n_seqs = int32_t(batch.sequences.size());
  const int32_t bs = kv.front().block_size();
  const int64_t n_cache_blocks = kv.front().k.dim(0);

  // Blocks each sequence touches this step: its table up to position n_past + n_tokens.
  int32_t max_blocks = 1, max_context = 0;
  for (const auto& s : batch.sequences) {
    AG_CHECK(s.n_tokens >= 1 && s.first_token >= 0 && int64_t(s.first_token) + s.n_tokens <= n && s.n_past >= 0,
             "forward: sequence rows outside the batch");
    const int32_t context = s.n_past + s.n_tokens;
    AG_CHECK(int64_t(s.n_blocks) * bs >= context && s.block_table, "forward: block table too short");
    max_blocks = std::max(max_blocks, (context + bs - 1) / bs);
    max_context = std::max(max_context, context);
  }
  if (context_bucket > 0) {
    max_context = std::max(max_context, context_bucket);
    max_blocks = std::max(max_blocks, (context_bucket + bs - 1) / bs);
  }

  // One host buffer for every index array (sized once: the views below point into it), uploaded in one copy: a
  // decode step's device work waits for these uploads, and each copy has its own fixed cost. Each array starts
  // at a multiple of 16 elements (64 bytes), as a separate allocation would.
  auto after = [](size_t offset, size_t count) { return (offset + count + 15) / 16 * 16; };
  const size_t o_ids = 0, o_pos = after(o_ids, size_t(n)), o_slots = after(o_pos, 3 * size_t(n));
  const size_t o_rows = after(o_slots, size_t(n)), o_info = after(o_rows, size_t(n_out));
  const size_t o_tables = after(o_info, 3 * size_t(n_seqs));
  host.assign(after(o_tables, size_t(n_seqs) * size_t(max_blocks)), -1);
  for (int64_t i = 0; i < n; ++i) {
    const int32_t id = batch.token_ids[size_t(i)];
    AG_CHECK(id >= 0 && id < cfg_.vocab_size, "token id " + std::to_string(id) + " outside the vocabulary");
    host[o_ids + size_t(i)] = id;
    host[o_pos + size_t(i)] = batch.pos_t[size_t(i)];
    host[o_pos + size_t(n + i)] = batch.pos_h[size_t(i)];
    host[o_pos + size_t(2 * n + i)] = batch.pos_w[size_t(i)];
  }
  for (int64_t r = 0; r < n_out; ++r) {
    const int32_t row = batch.logits_rows[size_t(r)];
    AG_CHECK(row >= 0 && row < n, "logits row out of range");
    host[o_rows + size_t(r)] = row;
  }
  for (int32_t s = 0; s < n_seqs; ++s) {
    const auto& seq = batch.sequences[size_t(s)];
    const int32_t used = (seq.n_past + seq.n_tokens + bs - 1) / bs;
    for (int32_t b = 0; b < used; ++b) {
      const int32_t block = seq.block_table[b];
      AG_CHECK(block >= 0 && block < n_cache_blocks, "block id out of range");
      host[o_tables + size_t(s) * size_t(max_blocks) + size_t(b)] = block;
    }
    for (int32_t j = 0; j < seq.n_tokens; ++j) {
      const int32_t p = seq.n_past + j;
      host[o_slots + size_t(seq.first_token + j)] = seq.block_table[p / bs] * bs + p % bs;
    }
    host[o_info + 3 * size_t(s)] = seq.first_token;
    host[o_info + 3 * size_t(s) + 1] = seq.n_tokens;
    host[o_info + 3 * size_t(s) + 2] = seq.n_past;
  }

  const tensor all = ops::to_device(ctx, tensor::view(host.data(), dtype::I32, {int64_t(host.size())}));
  auto up = [&](size_t offset, std::vector<int64_t> shape) {
    return tensor::view(all.ptr<int32_t>() + offset, dtype::I32, shape, all.dev());
  };
  in.n = n;
  in.n_out = n_out;
  in.embeddings = batch.embeddings;
  in.ids = up(o_ids, {n});
  in.pos = up(o_pos, {3, n});
  in.slots = up(o_slots, {n});
  if (n_out) in.logits_rows = up(o_rows, {n_out});
  in.batch.n_seqs = n_seqs;
  in.batch.max_context = max_context;
  in.batch.seq_info = up(o_info, {n_seqs, 3});
  in.batch.block_tables = up(o_tables, {n_seqs, max_blocks});
  in.batch.slots = in.slots;
}

void text_decoder::attention_block(exec_context& ctx, int32_t il, const step_inputs& in, const paged_kv_layer& kv,
                                   activations& a) const {
  const text_layer_weights& L = w_.layers[size_t(il)];
  // Names are built only when someone listens: a decode step of a small model is a few microseconds per layer.
  auto dump = [&](const char* what, const tensor& t) {
    if (ctx.dump()) ops::dump(ctx, "layer." + std::to_string(il) + "." + what, t);
  };
  const float eps = cfg_.rms_norm_eps;
  dump("attn_norm", a.h);  // input_norm(x), left in h by the previous block (or before layer 0)
  // This rank's q [n, qd], k, v [n, kvd]: column views of one stacked projection, or three of their own.
  tensor q = a.q, k = a.k, v = a.v;
  const int64_t qd = a.q.cols(), kvd = a.k.cols();
  const int32_t n_heads = shard_.n_heads, n_kv_heads = shard_.n_kv_heads;  // this rank's
  // New keys/values go to their cache slots (after RoPE) before attention, so each token attends to itself and
  // everything before it.
  if (!L.qkv_proj.empty()) {
    // One stacked projection: q and k adjacent with the same positions, so the projection, the rotation of both and
    // the store of k and v are one op (on a GPU, one launch for a decode step).
    q = a.qkv.cols_view(0, qd);
    k = a.qkv.cols_view(qd, kvd);
    v = a.qkv.cols_view(qd + kvd, kvd);
    ops::linear_rope_kv_store(ctx, a.h, L.qkv_proj, a.qkv, n_heads, cfg_.rotary_dim, in.pos, cfg_.mrope_section,
                              cfg_.rope_theta, kv, in.slots);
  } else {
    ops::linear(ctx, a.h, L.q_proj, q);
    ops::linear(ctx, a.h, L.k_proj, k);
    ops::linear(ctx, a.h, L.v_proj, v);
    ops::rope_mrope(ctx, q, n_heads, cfg_.head_dim, cfg_.rotary_dim, in.pos, cfg_.mrope_section, cfg_.rope_theta);
    ops::rope_mrope(ctx, k, n_kv_heads, cfg_.head_dim, cfg_.rotary_dim, in.pos, cfg_.mrope_section,
                    cfg_.rope_theta);
    ops::kv_store(ctx, kv, k, v, in.slots);
  }
  dump("q_rope", q);
  dump("k_rope", k);
  const float scale = 1.0f / std::sqrt(float(cfg_.head_dim));
  // A decode step's o_proj reads all its weights for a few rows, and nothing it reads depends on the attention: a
  // GPU brings them into its cache while the attention (latency-bound at such sizes) runs.
  if (in.n <= k_prefetch_max_rows) ops::prefetch(ctx, L.o_proj);
  ops::attention_paged(ctx, q, kv, in.batch, n_heads, n_kv_heads, cfg_.head_dim, scale, a.attn);
  dump("attn", a.attn);
  ops::linear(ctx, a.attn, L.o_proj, a.tmp);
  ops::all_reduce_sum(ctx, a.tmp);  // row-parallel o_proj: the ranks' partial sums (nothing with one rank)
  // x += post_self_attn_norm(o); h = post_attention_norm(x) for the MLP, in one pass.
  ops::residual_rms_norm(ctx, a.x, a.tmp, L.post_self_attn_norm, L.post_attention_norm, eps, a.h);
  dump("attn_residual", a.x);
}

void text_decoder::mlp_block(exec_context& ctx, int32_t il, activations& a) const {
  const text_layer_weights& L = w_.layers[size_t(il)];
  const float eps = cfg_.rms_norm_eps;
  // m = silu(gate) * up of h = post_attention_norm(x) (from the attention block); gu is the backend's scratch.
  ops::linear_swiglu(ctx, a.h, L.gate_up_proj, a.gu, a.m);
  ops::linear(ctx, a.m, L.down_proj, a.tmp);
  ops::all_reduce_sum(ctx, a.tmp);  // row-parallel down_proj
  // x += post_mlp_norm(down); h = the next layer's input_norm(x) (the last layer's final norm runs on the rows
  // whose logits are wanted only).
  const bool last = il + 1 == cfg_.n_layers;
  ops::residual_rms_norm(ctx, a.x, a.tmp, L.post_mlp_norm, last ? tensor() : w_.layers[size_t(il) + 1].input_norm,
                         eps, a.h);
}

tensor text_decoder::forward(exec_context& ctx, const forward_batch& batch,
                             const std::vector<paged_kv_layer>& kv) const {
  return compute(ctx, *prepare(ctx, batch, kv, 0), kv);
}

std::unique_ptr<prepared_step> text_decoder::prepare(exec_context& ctx, const forward_batch& batch,
                                                     const std::vector<paged_kv_layer>& kv,
                                                     int32_t context_bucket) const {
  const int64_t n = batch.n_tokens();
  AG_CHECK(n > 0, "empty batch");
  AG_CHECK(!batch.sequences.empty(), "forward: a batch without sequences");
  AG_CHECK(kv.size() == size_t(cfg_.n_layers), "forward: one KV layer per decoder layer");
  AG_CHECK(batch.pos_t.size() == size_t(n) && batch.pos_h.size() == size_t(n) && batch.pos_w.size() == size_t(n),
           "positions must cover every token");
  ctx.arena().reset();
  auto in = std::make_unique<step_inputs>();
  upload_inputs(ctx, batch, kv, context_bucket, *in);
  return in;
}

tensor text_decoder::compute(exec_context& ctx, const prepared_step& step, const std::vector<paged_kv_layer>& kv) const {
  const auto* inp = dynamic_cast<const step_inputs*>(&step);
  AG_CHECK(inp != nullptr, "text_decoder::compute: a step prepared by another model");
  const step_inputs& in = *inp;
  const int64_t n = in.n, H = cfg_.hidden_size;
  const int64_t qd = int64_t(shard_.n_heads) * cfg_.head_dim, kvd = int64_t(shard_.n_kv_heads) * cfg_.head_dim;
  const int64_t I = shard_.intermediate;
  const communicator* comm = ctx.comm();
  if (comm ? comm->size() != shard_.n_ranks || comm->rank() != shard_.rank : shard_.n_ranks != 1)
    throw error("forward: the decoder of rank " + std::to_string(shard_.rank) + " of " +
                std::to_string(shard_.n_ranks) + " runs with its own group's communicator on the context (and a whole " +
                "model with none or a group of one)");
  // The GEMMs' inputs h and m in the backend's type for them (BF16 for a prefill on CUDA: rounded once by the
  // norm or the gate that writes them); the residual stream and everything else in F32.
  const dtype act = ops::gemm_input_type(ctx, n);
  activations a;
  a.x = ops::scratch(ctx, dtype::F32, {n, H});
  a.h = ops::scratch(ctx, act, {n, H});
  a.q = ops::scratch(ctx, dtype::F32, {n, qd});
  a.k = ops::scratch(ctx, dtype::F32, {n, kvd});
  a.v = ops::scratch(ctx, dtype::F32, {n, kvd});
  if (any_stacked_qkv_) a.qkv = ops::scratch(ctx, dtype::F32, {n, qd + 2 * kvd});
  a.attn = ops::scratch(ctx, dtype::F32, {n, qd});
  a.tmp = ops::scratch(ctx, dtype::F32, {n, H});
  a.gu = ops::scratch(ctx, dtype::F32, {n, 2 * I});
  a.m = ops::scratch(ctx, act, {n, I});

  // Every row from the token table, then image rows copied over it (the placeholder ids are in the vocabulary).
  ops::embedding(ctx, w_.embed_tokens, in.ids, a.x);
  for (const embedding_span& span : in.embeddings) {
    AG_CHECK(span.first_row >= 0 && int64_t(span.first_row) + span.rows.rows() <= n && span.rows.cols() == H,
             "forward: embedding span " + span.rows.shape_str() + " at row " + std::to_string(span.first_row) +
                 " does not fit the batch");
    tensor dst = a.x.rows_view(span.first_row, span.rows.rows());
    ops::copy(ctx, span.rows, dst);
  }
  ops::dump(ctx, "hidden.0", a.x);

  if (cfg_.n_layers > 0) ops::rms_norm(ctx, a.x, w_.layers[0].input_norm, cfg_.rms_norm_eps, a.h);
  for (int32_t il = 0; il < cfg_.n_layers; ++il) {
    attention_block(ctx, il, in, kv[size_t(il)], a);
    mlp_block(ctx, il, a);
    if (il + 1 < cfg_.n_layers && ctx.dump()) ops::dump(ctx, "hidden." + std::to_string(il + 1), a.x);
  }

  // Only the requested rows go through the final norm and the (large) lm_head.
  const int64_t n_out = in.n_out;
  if (n_out == 0) return {};
  tensor sel = ops::scratch(ctx, dtype::F32, {n_out, H});
  ops::embedding(ctx, a.x, in.logits_rows, sel);  // a row gather
  ops::rms_norm(ctx, sel, w_.final_norm, cfg_.rms_norm_eps, sel);
  if (ctx.dump()) ops::dump(ctx, "hidden." + std::to_string(cfg_.n_layers), sel);
  tensor out = ops::scratch(ctx, dtype::F32, {n_out, int64_t(cfg_.vocab_size)});
  if (!comm) {
    ops::linear(ctx, sel, w_.lm_head, out);
    return out;
  }
  // Vocabulary-parallel lm_head: this rank's rows, then every rank's logits side by side (padding cut off).
  tensor part = ops::scratch(ctx, dtype::F32, {n_out, shard_.vocab_rows});
  ops::linear(ctx, sel, w_.lm_head, part);
  ops::all_gather_cols(ctx, part, out);
  return out;
}

}  // namespace autoglm::glm4v
