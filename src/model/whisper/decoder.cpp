// model/whisper/decoder.cpp: the decoder forward pass over ops (see decoder.h).
#include "model/whisper/decoder.h"

#include <cmath>
#include <string>

#include "core/error.h"
#include "ops/ops.h"

namespace autoglm::whisper {

decoder_state decoder::start(exec_context& ctx, const tensor& encoder_out) const {
  AG_CHECK(encoder_out.rows() == cfg_.max_source_positions && encoder_out.cols() == cfg_.d_model,
           "decoder::start: encoder output " + encoder_out.shape_str());
  ctx.arena().reset();
  decoder_state st;
  const int64_t n_blocks = (int64_t(cfg_.max_target_positions) + k_block_size - 1) / k_block_size;
  const std::vector<int64_t> shape = {n_blocks, k_block_size, cfg_.decoder_heads, cfg_.head_dim()};
  std::vector<int32_t> table(static_cast<size_t>(n_blocks));
  for (int64_t b = 0; b < n_blocks; ++b) table[size_t(b)] = int32_t(b);
  st.block_table = ops::alloc_persistent(ctx, dtype::I32, {1, n_blocks});
  ops::copy(ctx, ops::to_device(ctx, tensor::view(table.data(), dtype::I32, {1, n_blocks})), st.block_table);
  for (const decoder_layer_weights& L : w_.layers) {
    paged_kv_layer kv;
    kv.k = ops::alloc_persistent(ctx, dtype::F32, shape);
    kv.v = ops::alloc_persistent(ctx, dtype::F32, shape);
    st.self_kv.push_back(kv);
    st.cross.push_back(layers::cross_attention_kv(ctx, L.cross_attn, encoder_out));
  }
  // The block table came from host memory that goes away with this call.
  ops::synchronize(ctx);
  return st;
}

std::vector<float> decoder::forward(exec_context& ctx, decoder_state& st, const std::vector<int32_t>& ids,
                                    const std::vector<int32_t>& rows) const {
  const int64_t n = int64_t(ids.size()), D = cfg_.d_model, F = cfg_.decoder_ffn_dim, V = cfg_.vocab_size;
  const int32_t heads = cfg_.decoder_heads, hd = cfg_.head_dim();
  const float eps = cfg_.layer_norm_eps;
  AG_CHECK(n > 0, "decoder::forward: no tokens");
  if (int64_t(st.n_past) + n > cfg_.max_target_positions)
    throw error("whisper decoder: " + std::to_string(st.n_past + n) + " positions exceed max_target_positions (" +
                std::to_string(cfg_.max_target_positions) + ")");
  ctx.arena().reset();

  // Index inputs in one host buffer: ids [n], positions [n] (= cache slots), seq_info [1, 3], logits rows.
  const int64_t n_out = int64_t(rows.size());
  std::vector<int32_t> host(size_t(2 * n + 3 + n_out));
  int32_t* h_ids = host.data();
  int32_t* h_pos = h_ids + n;
  int32_t* h_info = h_pos + n;
  int32_t* h_rows = h_info + 3;
  for (int64_t i = 0; i < n; ++i) {
    if (ids[size_t(i)] < 0 || ids[size_t(i)] >= V)
      throw error("whisper decoder: token id " + std::to_string(ids[size_t(i)]) + " outside the vocabulary");
    h_ids[i] = ids[size_t(i)];
    h_pos[i] = st.n_past + int32_t(i);
  }
  h_info[0] = 0;
  h_info[1] = int32_t(n);
  h_info[2] = st.n_past;
  for (int64_t r = 0; r < n_out; ++r) {
    AG_CHECK(rows[size_t(r)] >= 0 && rows[size_t(r)] < n, "decoder::forward: logits row outside the tokens");
    h_rows[r] = rows[size_t(r)];
  }
  const tensor ids_d = ops::to_device(ctx, tensor::view(h_ids, dtype::I32, {n}));
  const tensor pos_d = ops::to_device(ctx, tensor::view(h_pos, dtype::I32, {n}));
  const tensor rows_d = n_out ? ops::to_device(ctx, tensor::view(h_rows, dtype::I32, {n_out})) : tensor();
  paged_batch batch;
  batch.n_seqs = 1;
  batch.max_context = st.n_past + int32_t(n);
  batch.seq_info = ops::to_device(ctx, tensor::view(h_info, dtype::I32, {1, 3}));
  batch.block_tables = st.block_table;
  batch.slots = pos_d;

  // x = token embedding (times sqrt(D) when scale_embedding) + learned position embedding.
  tensor x = ops::scratch(ctx, dtype::F32, {n, D});
  tensor tok = ops::scratch(ctx, dtype::F32, {n, D});
  ops::embedding(ctx, w_.embed_positions, pos_d, x);
  ops::embedding(ctx, w_.embed_tokens, ids_d, tok);
  if (cfg_.scale_embedding) ops::add_scaled(ctx, x, tok, std::sqrt(float(D)));
  else ops::add(ctx, x, tok);
  ops::dump(ctx, "decoder.embeddings", x);

  tensor h = ops::scratch(ctx, dtype::F32, {n, D});
  tensor q = ops::scratch(ctx, dtype::F32, {n, D}), k = ops::scratch(ctx, dtype::F32, {n, D}),
         v = ops::scratch(ctx, dtype::F32, {n, D}), attn = ops::scratch(ctx, dtype::F32, {n, D});
  tensor ffn = ops::scratch(ctx, dtype::F32, {n, F});
  const float scale = 1.0f / std::sqrt(float(hd));
  for (size_t il = 0; il < w_.layers.size(); ++il) {
    const decoder_layer_weights& L = w_.layers[il];
    // Causal self-attention: new K/V into their slots first, so each token sees itself and what came before.
    ops::layer_norm(ctx, x, L.self_attn.norm_w, L.self_attn.norm_b, eps, h);
    ops::linear(ctx, h, L.self_attn.q_proj, q);
    ops::linear(ctx, h, L.self_attn.k_proj, k);
    ops::linear(ctx, h, L.self_attn.v_proj, v);
    ops::kv_store(ctx, st.self_kv[il], k, v, pos_d);
    ops::attention_paged(ctx, q, st.self_kv[il], batch, heads, heads, hd, scale, attn);
    ops::linear(ctx, attn, L.self_attn.out_proj, h);
    ops::add(ctx, x, h);
    // Cross-attention over the encoder states (ungated).
    layers::cross_attention_residual(ctx, L.cross_attn, st.cross[il], x);
    // Feed-forward.
    ops::layer_norm(ctx, x, L.ffn.norm_w, L.ffn.norm_b, eps, h);
    ops::linear(ctx, h, L.ffn.fc1, ffn);
    ops::gelu(ctx, ffn);
    ops::linear(ctx, ffn, L.ffn.fc2, h);
    ops::add(ctx, x, h);
    if (ctx.dump()) ops::dump(ctx, "decoder.layers." + std::to_string(il), x);
  }
  st.n_past += int32_t(n);
  if (n_out == 0) return {};

  // Only the rows whose logits are wanted go through the final norm and the vocabulary projection.
  tensor sel = ops::scratch(ctx, dtype::F32, {n_out, D});
  ops::embedding(ctx, x, rows_d, sel);  // a row gather
  ops::layer_norm(ctx, sel, w_.norm_w, w_.norm_b, eps, sel);
  tensor logits = ops::scratch(ctx, dtype::F32, {n_out, V});
  ops::linear(ctx, sel, w_.proj_out, logits);
  std::vector<float> out(static_cast<size_t>(n_out * V));
  ops::to_host(ctx, logits, out.data(), out.size() * sizeof(float));
  return out;
}

}  // namespace autoglm::whisper
