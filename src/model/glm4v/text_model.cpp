#include "model/glm4v/text_model.h"

#include <cmath>
#include <cstring>

#include "core/error.h"
#include "kernels/cpu/activations.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/convert.h"
#include "kernels/cpu/linear.h"
#include "kernels/cpu/norm.h"
#include "kernels/cpu/rope.h"

namespace autoglm::glm4v {

namespace {

weight_view bind_matrix(const tensor_store& store, const std::string& name, int64_t rows, int64_t cols) {
  const tensor_ref& t = store.get(name, {rows, cols});
  if (t.type != dtype::BF16 && t.type != dtype::F16 && t.type != dtype::F32)
    throw error(t.file + ": tensor '" + name + "' has dtype " + dtype_name(t.type) + "; expected BF16, F16 or F32");
  return weight_view{t.type, t.data, rows, cols};
}

std::vector<float> bind_vector(const tensor_store& store, const std::string& name, int64_t n) {
  const tensor_ref& t = store.get(name, {n});
  if (t.type != dtype::BF16 && t.type != dtype::F16 && t.type != dtype::F32)
    throw error(t.file + ": tensor '" + name + "' has dtype " + dtype_name(t.type) + "; expected BF16, F16 or F32");
  std::vector<float> v(static_cast<size_t>(n));
  cpu::convert_to_f32(t.type, t.data, v.data(), n);
  return v;
}

size_t matrix_bytes(const weight_view& w) { return size_t(w.rows) * size_t(w.cols) * dtype_size(w.type); }

float* grow(aligned_buffer& b, int64_t n_floats) {
  b.resize(size_t(n_floats) * sizeof(float));
  return b.f32();
}

}  // namespace

text_model::text_model(const config& cfg, const tensor_store& store) : cfg_(cfg) {
  const auto& t = cfg.text;
  const std::string p = "model.language_model.";
  const int64_t H = t.hidden_size, qd = int64_t(t.n_heads) * t.head_dim, kvd = int64_t(t.n_kv_heads) * t.head_dim;
  embed_tokens_ = bind_matrix(store, p + "embed_tokens.weight", t.vocab_size, H);
  lm_head_ = bind_matrix(store, "lm_head.weight", t.vocab_size, H);
  final_norm_ = bind_vector(store, p + "norm.weight", H);
  weight_bytes_per_token_ = matrix_bytes(lm_head_);
  for (int32_t i = 0; i < t.n_layers; ++i) {
    const std::string l = p + "layers." + std::to_string(i) + ".";
    text_layer L;
    L.input_norm = bind_vector(store, l + "input_layernorm.weight", H);
    L.post_self_attn_norm = bind_vector(store, l + "post_self_attn_layernorm.weight", H);
    L.post_attention_norm = bind_vector(store, l + "post_attention_layernorm.weight", H);
    L.post_mlp_norm = bind_vector(store, l + "post_mlp_layernorm.weight", H);
    L.q_proj = bind_matrix(store, l + "self_attn.q_proj.weight", qd, H);
    L.k_proj = bind_matrix(store, l + "self_attn.k_proj.weight", kvd, H);
    L.v_proj = bind_matrix(store, l + "self_attn.v_proj.weight", kvd, H);
    L.o_proj = bind_matrix(store, l + "self_attn.o_proj.weight", H, qd);
    if (t.attention_bias) {
      L.q_bias = bind_vector(store, l + "self_attn.q_proj.bias", qd);
      L.k_bias = bind_vector(store, l + "self_attn.k_proj.bias", kvd);
      L.v_bias = bind_vector(store, l + "self_attn.v_proj.bias", kvd);
    }
    L.gate_up_proj = bind_matrix(store, l + "mlp.gate_up_proj.weight", 2 * int64_t(t.intermediate_size), H);
    L.down_proj = bind_matrix(store, l + "mlp.down_proj.weight", H, t.intermediate_size);
    for (auto* w : {&L.q_proj, &L.k_proj, &L.v_proj, &L.o_proj, &L.gate_up_proj, &L.down_proj})
      weight_bytes_per_token_ += matrix_bytes(*w);
    layers_.push_back(std::move(L));
  }
}

size_t text_model::kv_bytes_per_token() const {
  const auto& t = cfg_.text;
  return size_t(t.n_layers) * 2 * size_t(t.n_kv_heads) * size_t(t.head_dim) * sizeof(float);
}

void text_model::allocate_kv_cache(int32_t n_blocks, int32_t block_size) {
  AG_CHECK(n_blocks > 0 && block_size > 0, "bad KV cache geometry");
  const auto& t = cfg_.text;
  n_blocks_ = n_blocks;
  block_size_ = block_size;
  const size_t floats = size_t(n_blocks) * size_t(block_size) * size_t(t.n_kv_heads) * size_t(t.head_dim);
  k_cache_.clear();
  v_cache_.clear();
  for (int32_t i = 0; i < t.n_layers; ++i) {
    k_cache_.emplace_back(floats * sizeof(float));
    v_cache_.emplace_back(floats * sizeof(float));
  }
}

void text_model::embed(const forward_batch& batch, float* x) const {
  const int64_t H = cfg_.text.hidden_size;
  for (int32_t i = 0; i < batch.n_tokens(); ++i) {
    float* row = x + int64_t(i) * H;
    if (!batch.embed_rows.empty() && batch.embed_rows[size_t(i)]) {
      std::memcpy(row, batch.embed_rows[size_t(i)], size_t(H) * sizeof(float));
    } else {
      int32_t id = batch.token_ids[size_t(i)];
      AG_CHECK(id >= 0 && id < cfg_.text.vocab_size, "token id " + std::to_string(id) + " outside the vocabulary");
      cpu::convert_to_f32(embed_tokens_.type, embed_tokens_.row_ptr(id), row, H);
    }
  }
}

void text_model::attention_block(const text_layer& L, int32_t il, const forward_batch& batch, float* x) {
  const auto& t = cfg_.text;
  const int64_t n = batch.n_tokens(), H = t.hidden_size, hd = t.head_dim;
  const int64_t qd = int64_t(t.n_heads) * hd, kvd = int64_t(t.n_kv_heads) * hd;
  const std::string pfx = "layer." + std::to_string(il) + ".";
  float* h = grow(h_, n * H);
  float* q = grow(q_, n * qd);
  float* k = grow(k_, n * kvd);
  float* v = grow(v_, n * kvd);
  float* attn = grow(attn_, n * qd);
  float* tmp = grow(tmp_, n * H);

  cpu::rms_norm(x, L.input_norm.data(), n, H, t.rms_norm_eps, h);
  dump(pfx + "attn_norm", h, n, H);
  cpu::linear(h, n, L.q_proj, L.q_bias.empty() ? nullptr : L.q_bias.data(), q);
  cpu::linear(h, n, L.k_proj, L.k_bias.empty() ? nullptr : L.k_bias.data(), k);
  cpu::linear(h, n, L.v_proj, L.v_bias.empty() ? nullptr : L.v_bias.data(), v);
  cpu::rope_mrope_interleaved(q, n, qd, t.n_heads, hd, t.rotary_dim, batch.pos_t.data(), batch.pos_h.data(),
                              batch.pos_w.data(), t.mrope_section.data(), t.rope_theta);
  cpu::rope_mrope_interleaved(k, n, kvd, t.n_kv_heads, hd, t.rotary_dim, batch.pos_t.data(), batch.pos_h.data(),
                              batch.pos_w.data(), t.mrope_section.data(), t.rope_theta);
  dump(pfx + "q_rope", q, n, qd);
  dump(pfx + "k_rope", k, n, kvd);

  // Write the new keys/values into their cache slots, then attend per sequence through its block table.
  float* kc = k_cache_[size_t(il)].f32();
  float* vc = v_cache_[size_t(il)].f32();
  for (const auto& s : batch.sequences) {
    AG_CHECK(int64_t(s.n_blocks) * block_size_ >= int64_t(s.n_past) + s.n_tokens, "block table too short");
    for (int32_t j = 0; j < s.n_tokens; ++j) {
      const int32_t pos = s.n_past + j;
      const int32_t block = s.block_table[pos / block_size_];
      AG_CHECK(block >= 0 && block < n_blocks_, "block id out of range");
      const size_t slot = (size_t(block) * size_t(block_size_) + size_t(pos % block_size_)) * size_t(kvd);
      std::memcpy(kc + slot, k + int64_t(s.first_token + j) * kvd, size_t(kvd) * sizeof(float));
      std::memcpy(vc + slot, v + int64_t(s.first_token + j) * kvd, size_t(kvd) * sizeof(float));
    }
  }
  const float scale = 1.0f / std::sqrt(float(hd));
  for (const auto& s : batch.sequences) {
    cpu::paged_kv kv{kc, vc, block_size_, s.block_table};
    cpu::attention_paged(q + int64_t(s.first_token) * qd, qd, s.n_tokens, s.n_past, t.n_heads, t.n_kv_heads, hd, scale, kv,
                         attn + int64_t(s.first_token) * qd, qd);
  }
  dump(pfx + "attn", attn, n, qd);
  cpu::linear(attn, n, L.o_proj, nullptr, tmp);
  cpu::rms_norm(tmp, L.post_self_attn_norm.data(), n, H, t.rms_norm_eps, tmp);
  cpu::add_inplace(x, tmp, n * H);
  dump(pfx + "attn_residual", x, n, H);
}

void text_model::mlp_block(const text_layer& L, int32_t il, int64_t n, float* x) {
  const auto& t = cfg_.text;
  const int64_t H = t.hidden_size, I = t.intermediate_size;
  float* h = grow(h_, n * H);
  float* gu = grow(gu_, n * 2 * I);
  float* m = grow(mlp_, n * I);
  float* tmp = grow(tmp_, n * H);
  cpu::rms_norm(x, L.post_attention_norm.data(), n, H, t.rms_norm_eps, h);
  cpu::linear(h, n, L.gate_up_proj, nullptr, gu);
  cpu::silu_mul_fused(gu, n, I, m);
  cpu::linear(m, n, L.down_proj, nullptr, tmp);
  cpu::rms_norm(tmp, L.post_mlp_norm.data(), n, H, t.rms_norm_eps, tmp);
  cpu::add_inplace(x, tmp, n * H);
}

void text_model::forward(const forward_batch& batch, float* logits) {
  const auto& t = cfg_.text;
  const int64_t n = batch.n_tokens(), H = t.hidden_size;
  AG_CHECK(n > 0, "empty batch");
  AG_CHECK(!k_cache_.empty(), "KV cache not allocated");
  AG_CHECK(batch.pos_t.size() == size_t(n) && batch.pos_h.size() == size_t(n) && batch.pos_w.size() == size_t(n),
           "positions must cover every token");
  float* x = grow(x_, n * H);
  embed(batch, x);
  dump("hidden.0", x, n, H);
  for (int32_t il = 0; il < t.n_layers; ++il) {
    attention_block(layers_[size_t(il)], il, batch, x);
    mlp_block(layers_[size_t(il)], il, n, x);
    if (il + 1 < t.n_layers) dump("hidden." + std::to_string(il + 1), x, n, H);
  }
  // Only the requested rows go through the final norm and the (large) lm_head.
  const int64_t n_out = int64_t(batch.logits_rows.size());
  if (n_out == 0) return;
  float* sel = grow(h_, n_out * H);
  for (int64_t r = 0; r < n_out; ++r) {
    int32_t row = batch.logits_rows[size_t(r)];
    AG_CHECK(row >= 0 && row < n, "logits row out of range");
    std::memcpy(sel + r * H, x + int64_t(row) * H, size_t(H) * sizeof(float));
  }
  cpu::rms_norm(sel, final_norm_.data(), n_out, H, t.rms_norm_eps, sel);
  dump("hidden." + std::to_string(t.n_layers), sel, n_out, H);
  cpu::linear(sel, n_out, lm_head_, nullptr, logits);
}

}  // namespace autoglm::glm4v
