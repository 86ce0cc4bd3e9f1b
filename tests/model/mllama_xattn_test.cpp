// tests/model/mllama_xattn_test.cpp: the gated form of the cross-attention block (model/common/cross_attention.h)
// against transformers' MllamaCrossAttentionDecoderLayer on a tiny MllamaTextConfig with non-zero gates (GQA, per-head
// q/k RMSNorm, RMSNorm pre-norms):
//   x = x + tanh(attn_gate) * cross_attn(input_layernorm(x), cross_states)
//   x = x + tanh(mlp_gate) * mlp(post_attention_layernorm(x))          (mlp = down(silu(gate) * up), written here)
// The block's ops are the ones Whisper uses ungated, plus ADD_SCALED for the gates (tanh read once, at binding).
// Output within 1e-4 x max|ref| (stated, not tuned). Skips while tests/fixtures/mllama_xattn is absent
// (make_whisper_fixtures.py writes it).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "formats/safetensors.h"
#include "model/common/cross_attention.h"
#include "model/common/weight_binder.h"
#include "ops/ops.h"

using namespace autoglm;
using json = nlohmann::json;

namespace {

std::string dir() { return std::string(AUTOGLM_SOURCE_DIR) + "/tests/fixtures/mllama_xattn"; }

std::vector<float> read_f32(const json& desc) {
  const std::string path = dir() + "/" + desc["file"].get<std::string>();
  int64_t n = 1;
  for (int64_t d : desc["shape"].get<std::vector<int64_t>>()) n *= d;
  std::vector<float> v(static_cast<size_t>(n));
  std::ifstream in(path, std::ios::binary);
  in.read(reinterpret_cast<char*>(v.data()), std::streamsize(n * 4));
  if (in.gcount() != n * 4) throw std::runtime_error("short or missing " + path);
  return v;
}

// A [1] gate parameter's tanh, read once from the checkpoint (F32, F16 or BF16).
float tanh_gate(const tensor_source& src, const std::string& name) {
  const tensor g = src.get(name, {1});
  tensor f = tensor::empty_host(dtype::F32, {1});
  exec_context host(device{}, 1);
  ops::copy(host, g, f);
  return std::tanh(f.ptr<float>()[0]);
}

}  // namespace

TEST(mllama_cross_attention, gated_layer_matches_transformers) {
  if (!std::filesystem::exists(dir() + "/ref.json"))
    GTEST_SKIP() << "tests/fixtures/mllama_xattn absent: run tests/fixtures/make_whisper_fixtures.py OUT on a machine "
                    "with torch + transformers and copy OUT/mllama_xattn there";
  std::ifstream in(dir() + "/ref.json");
  const json ref = json::parse(in);
  const int64_t H = ref["hidden_size"], I = ref["intermediate_size"];
  const int32_t heads = ref["num_attention_heads"], kv_heads = ref["num_key_value_heads"];
  const int32_t hd = int32_t(H / heads);
  const float eps = ref["rms_norm_eps"];
  exec_context ctx(device{}, 2);
  const auto store = tensor_store::open_dir(dir());
  weight_binder b(*store, ctx);
  layers::cross_attention_weights w;
  w.norm_w = b.param("input_layernorm.weight", {H});
  w.norm_eps = eps;
  w.q_proj = b.linear("cross_attn.q_proj.weight", {int64_t(heads) * hd, H}, "", shard_kind::REPLICATED);
  w.k_proj = b.linear("cross_attn.k_proj.weight", {int64_t(kv_heads) * hd, H}, "", shard_kind::REPLICATED);
  w.v_proj = b.linear("cross_attn.v_proj.weight", {int64_t(kv_heads) * hd, H}, "", shard_kind::REPLICATED);
  w.o_proj = b.linear("cross_attn.o_proj.weight", {H, int64_t(heads) * hd}, "", shard_kind::REPLICATED);
  w.q_norm = b.param("cross_attn.q_norm.weight", {hd});
  w.k_norm = b.param("cross_attn.k_norm.weight", {hd});
  w.qk_norm_eps = eps;
  w.n_heads = heads;
  w.n_kv_heads = kv_heads;
  w.head_dim = hd;
  w.gate = tanh_gate(*store, "cross_attn_attn_gate");
  const float mlp_gate = tanh_gate(*store, "cross_attn_mlp_gate");
  ASSERT_NE(w.gate, 0.0f) << "the fixture must have non-zero gates";
  ASSERT_NE(w.gate, 1.0f);
  const tensor post_norm = b.param("post_attention_layernorm.weight", {H});
  const linear_weight gate_p = b.linear("mlp.gate_proj.weight", {I, H}, "", shard_kind::REPLICATED);
  const linear_weight up_p = b.linear("mlp.up_proj.weight", {I, H}, "", shard_kind::REPLICATED);
  const linear_weight down_p = b.linear("mlp.down_proj.weight", {H, I}, "", shard_kind::REPLICATED);

  std::vector<float> x = read_f32(ref["hidden_states"]);
  const std::vector<float> media = read_f32(ref["cross_attention_states"]);
  const std::vector<float> want = read_f32(ref["output"]);
  const int64_t n = int64_t(x.size()) / H, m = int64_t(media.size()) / H;
  tensor xt = tensor::view(x.data(), dtype::F32, {n, H});
  const tensor mt = tensor::view(media.data(), dtype::F32, {m, H});

  const layers::cross_kv kv = layers::cross_attention_kv(ctx, w, mt);
  layers::cross_attention_residual(ctx, w, kv, xt);
  tensor h = ops::scratch(ctx, dtype::F32, {n, H}), g = ops::scratch(ctx, dtype::F32, {n, I}),
         u = ops::scratch(ctx, dtype::F32, {n, I});
  ops::rms_norm(ctx, xt, post_norm, eps, h);
  ops::linear(ctx, h, gate_p, g);
  ops::linear(ctx, h, up_p, u);
  ops::silu_mul(ctx, g, u, g);
  ops::linear(ctx, g, down_p, h);
  ops::add_scaled(ctx, xt, h, mlp_gate);

  double mr = 0, md = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    mr = std::max(mr, double(std::fabs(want[i])));
    md = std::max(md, double(std::fabs(x[i] - want[i])));
  }
  std::printf("[mllama cross-attention] max|diff|/max|ref| = %.3g (gates tanh %.4f, %.4f)\n", md / mr, w.gate, mlp_gate);
  EXPECT_LE(md, 1e-4 * mr);
}
