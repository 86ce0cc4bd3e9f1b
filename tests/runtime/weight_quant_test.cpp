// engine_options.weight_quant on the demo checkpoint: the safetensors quantized at load give, bit for bit, the
// logits of the GGUF files `autoglm quantize` writes for the same type and overrides (text and image prompts),
// for every GGUF type; I8 (no GGUF form) runs and stays close to the reference; bad types, malformed overrides and
// --quant on a GGUF directory are refused with messages that name the option; the quantized source converts only
// what the policy asks, gives the quantizer's bytes and names the tensor when a conversion is impossible.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <random>

#include "autoglm/engine.h"
#include "common/env_scope.h"
#include "core/error.h"
#include "event_collector.h"
#include "formats/gguf_glm4v.h"
#include "formats/quantize.h"
#include "formats/quantized_source.h"
#include "formats/safetensors.h"
#include "kernels/cpu/quant_repack.h"
#include "model/common/weight_binder.h"
#include "ops/repack_cache.h"

using namespace autoglm;
namespace fs = std::filesystem;

namespace {

std::string demo_dir() { return std::string(AUTOGLM_SOURCE_DIR) + "/models/demo"; }

class weight_quant : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(demo_dir() + "/config.json")) GTEST_SKIP() << "no demo model at " << demo_dir();
    tmp_ = fs::temp_directory_path() / ("autoglm-wq-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(tmp_);
    fs::create_directories(tmp_);
  }
  void TearDown() override {
    std::error_code ec;
    if (!tmp_.empty()) fs::remove_all(tmp_, ec);
  }

  // A model directory with the demo's JSON files and the GGUF pair quantize writes for `type` / `keep`.
  std::string gguf_dir(const std::string& name, dtype type, std::vector<std::pair<std::string, dtype>> keep = {}) {
    const fs::path d = tmp_ / name;
    fs::create_directories(d);
    for (const char* f : {"config.json", "generation_config.json", "preprocessor_config.json"})
      fs::copy_file(fs::path(demo_dir()) / f, d / f);
    glm4v_gguf::write_options o;
    o.type = type;
    o.keep = std::move(keep);
    glm4v_gguf::write_text(demo_dir(), (d / "demo.gguf").string(), o);
    glm4v_gguf::write_mmproj(demo_dir(), (d / "mmproj-demo.gguf").string(), o);
    return d.string();
  }

  static engine_options options(const std::string& dir, const std::string& quant = "",
                                std::vector<std::string> keep = {}) {
    engine_options o;
    o.model_dir = dir;
    o.n_threads = 2;
    o.max_num_seqs = 1;
    o.max_model_len = 256;
    o.enable_prefix_caching = false;
    o.weight_quant = quant;
    o.weight_quant_keep = std::move(keep);
    return o;
  }

  fs::path tmp_;
};

// Every prompt position's logits.
std::vector<float> prompt_logits(const engine_options& o, const std::vector<int32_t>& prompt,
                                 std::vector<vision_input> images = {}) {
  auto e = engine::create(o);
  generation_request r;
  r.prompt = prompt;
  r.images = std::move(images);
  r.sampling.temperature = 0.0f;
  r.sampling.max_tokens = 1;
  r.return_prompt_logits = true;
  test::collector c;
  const auto evs = c.wait(e->submit(std::move(r), c.callback()));
  e->shutdown();
  for (const auto& ev : evs)
    if (!ev.prompt_logits.empty()) return ev.prompt_logits;
  ADD_FAILURE() << "no prompt logits" << (evs.empty() ? "" : ": " + evs.back().error);
  return {};
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return !a.empty() && a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) m = std::max(m, double(std::fabs(a[i] - b[i])));
  return m;
}

// A 4 x 4-patch image of normal pixel values (the demo's patch 14, temporal 2).
vision_input random_image(uint64_t seed, uint64_t hash) {
  vision_input im;
  im.grid_h = 4;
  im.grid_w = 4;
  im.pixel_values.resize(size_t(16) * 3 * 2 * 14 * 14);
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (float& v : im.pixel_values) v = nd(rng);
  im.content_hash = hash;
  return im;
}

// [gMASK] <sop> <|user|> some text tokens <|assistant|>.
const std::vector<int32_t> k_text = {1458, 1460, 1463, 39, 68, 75, 259, 895, 904, 1315, 100, 200, 300, 400, 1464};

std::string error_of(const std::function<void()>& fn, std::string* param = nullptr) {
  try {
    fn();
  } catch (const invalid_request& e) {
    if (param) *param = e.param();
    return e.what();
  } catch (const error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_F(weight_quant, q8_0_at_load_equals_the_gguf_quantize_writes_bit_for_bit) {
  const std::vector<float> ref = prompt_logits(options(demo_dir()), k_text);
  const std::vector<float> at_load = prompt_logits(options(demo_dir(), "q8_0"), k_text);
  const std::vector<float> from_gguf = prompt_logits(options(gguf_dir("q8_0", dtype::Q8_0)), k_text);
  EXPECT_TRUE(same_bits(at_load, from_gguf)) << "largest difference " << max_abs_diff(at_load, from_gguf);
  // And it is a quantized model: close to the reference, not equal to it.
  EXPECT_FALSE(same_bits(at_load, ref));
  EXPECT_LT(max_abs_diff(at_load, ref), 0.5);
}

TEST_F(weight_quant, every_gguf_type_and_overrides_equal_their_gguf) {
  struct c { const char* name; dtype type; std::vector<std::string> keep; std::vector<std::pair<std::string, dtype>> gkeep; };
  const std::vector<c> cases = {
      {"q4_0", dtype::Q4_0, {}, {}},
      {"Q4_K", dtype::Q4_K, {}, {}},  // any case; rows of 128 fall back as the writer's do
      {"q5_k", dtype::Q5_K, {}, {}},
      {"q6_k", dtype::Q6_K, {}, {}},
      {"q5_1", dtype::Q5_1, {}, {}},
      {"q4_0", dtype::Q4_0, {"*embed_tokens*=f16", "*.layers.1.*=q8_0", "lm_head*=BF16"},
       {{"*embed_tokens*", dtype::F16}, {"*.layers.1.*", dtype::Q8_0}, {"lm_head*", dtype::BF16}}},
  };
  const std::vector<float> ref = prompt_logits(options(demo_dir()), k_text);
  int i = 0;
  for (const c& t : cases) {
    SCOPED_TRACE(std::string(t.name) + " with " + std::to_string(t.keep.size()) + " overrides");
    const auto at_load = prompt_logits(options(demo_dir(), t.name, t.keep), k_text);
    const auto from_gguf = prompt_logits(options(gguf_dir("g" + std::to_string(i++), t.type, t.gkeep)), k_text);
    EXPECT_TRUE(same_bits(at_load, from_gguf)) << "largest difference " << max_abs_diff(at_load, from_gguf);
    EXPECT_FALSE(same_bits(at_load, ref));
  }
}

TEST_F(weight_quant, an_image_prompt_through_the_quantized_vision_tower_equals_the_mmproj) {
  const vision_input im = random_image(7, 42);
  // [gMASK] <sop> <|user|> <|begin_of_image|> 4 x <|image|> <|end_of_image|> text <|assistant|>
  const std::vector<int32_t> p = {1458, 1460, 1463, 1466, 1470, 1470, 1470, 1470, 1467, 100, 200, 1464};
  const auto at_load = prompt_logits(options(demo_dir(), "q8_0"), p, {im});
  const auto from_gguf = prompt_logits(options(gguf_dir("v", dtype::Q8_0)), p, {im});
  EXPECT_TRUE(same_bits(at_load, from_gguf)) << "largest difference " << max_abs_diff(at_load, from_gguf);
}

TEST_F(weight_quant, i8_runs_close_to_the_reference) {
  const auto ref = prompt_logits(options(demo_dir()), k_text);
  const auto i8 = prompt_logits(options(demo_dir(), "i8"), k_text);
  ASSERT_EQ(i8.size(), ref.size());
  EXPECT_FALSE(same_bits(i8, ref));
  EXPECT_LT(max_abs_diff(i8, ref), 0.5);
  // An override of the token table to I8 has no embedding kernel: a load error naming the tensor, not a crash.
  const std::string msg = error_of([&] { engine::create(options(demo_dir(), "i8", {"*embed_tokens*=i8"})); });
  EXPECT_NE(msg.find("embed_tokens"), std::string::npos) << msg;
}

TEST_F(weight_quant, bad_options_are_refused_before_loading) {
  std::string param;
  std::string msg = error_of([&] { engine::create(options(demo_dir(), "q3_k")); }, &param);
  EXPECT_NE(msg.find("q3_k"), std::string::npos) << msg;
  EXPECT_NE(msg.find("q8_0"), std::string::npos) << msg;  // lists what exists
  EXPECT_EQ(param, "weight_quant");
  // f16 is an override type, not a quantization.
  msg = error_of([&] { engine::create(options(demo_dir(), "f16")); }, &param);
  EXPECT_EQ(param, "weight_quant") << msg;
  msg = error_of([&] { engine::create(options(demo_dir(), "q8_0", {"lm_head*"})); }, &param);
  EXPECT_NE(msg.find("PATTERN=TYPE"), std::string::npos) << msg;
  EXPECT_EQ(param, "weight_quant_keep");
  msg = error_of([&] { engine::create(options(demo_dir(), "q8_0", {"lm_head*=q9"})); }, &param);
  EXPECT_NE(msg.find("q9"), std::string::npos) << msg;
  EXPECT_EQ(param, "weight_quant_keep");
  msg = error_of([&] { engine::create(options(demo_dir(), "", {"lm_head*=f16"})); }, &param);
  EXPECT_NE(msg.find("need a quantization type"), std::string::npos) << msg;
  // The same check without an engine, for front ends that report options before loading.
  EXPECT_THROW(check_weight_quant_options(options(demo_dir(), "nope")), invalid_request);
  EXPECT_NO_THROW(check_weight_quant_options(options(demo_dir(), "Q5_K", {"*=bf16"})));
}

TEST_F(weight_quant, a_gguf_directory_is_not_quantized_again) {
  const std::string d = gguf_dir("g", dtype::Q8_0);
  const std::string msg = error_of([&] { engine::create(options(d, "q4_0")); });
  EXPECT_NE(msg.find("GGUF"), std::string::npos) << msg;
  EXPECT_NE(msg.find(d), std::string::npos) << msg;
}

TEST(quantized_source, converts_what_the_policy_asks_with_the_quantizers_bytes) {
  if (!fs::exists(demo_dir() + "/model.safetensors")) GTEST_SKIP() << "no demo model";
  const auto store = tensor_store::open_dir(demo_dir());
  const std::string q = "model.language_model.layers.0.self_attn.q_proj.weight";
  const std::string o = "model.language_model.layers.0.self_attn.o_proj.weight";
  const std::string n = "model.language_model.norm.weight";
  const quantized_source src(*store, [&](const std::string& name, const std::vector<int64_t>&, dtype stored) {
    return name == q ? dtype::Q8_0 : name == o ? dtype::I8 : stored;
  });
  EXPECT_EQ(src.n_converted(), 2);
  EXPECT_EQ(src.names(), store->names());
  const auto& eq = src.at(q);
  ASSERT_EQ(eq.data.type(), dtype::Q8_0);
  EXPECT_EQ(eq.shape, store->at(q).shape);
  const tensor expect = quant::quantize_tensor(store->at(q).data, dtype::Q8_0);
  ASSERT_EQ(eq.data.n_bytes(), expect.n_bytes());
  EXPECT_EQ(std::memcmp(eq.data.data(), expect.data(), expect.n_bytes()), 0);
  const auto& eo = src.at(o);
  EXPECT_EQ(eo.data.type(), dtype::I8);
  ASSERT_FALSE(eo.scales.empty());
  EXPECT_EQ(eo.scales.n_elements(), eo.shape[0]);
  // Unconverted tensors are the base's own views (no copy).
  EXPECT_EQ(src.at(n).data.data(), store->at(n).data.data());
  EXPECT_EQ(src.find("no.such.tensor"), nullptr);
}

TEST(quantized_source, an_impossible_conversion_names_file_and_tensor) {
  if (!fs::exists(demo_dir() + "/model.safetensors")) GTEST_SKIP() << "no demo model";
  const auto store = tensor_store::open_dir(demo_dir());
  // down_proj rows hold 180 elements: not whole Q4_K blocks of 256.
  const std::string d = "model.language_model.layers.0.mlp.down_proj.weight";
  std::string msg;
  try {
    quantized_source src(*store, [&](const std::string& name, const std::vector<int64_t>&, dtype stored) {
      return name == d ? dtype::Q4_K : stored;
    });
  } catch (const error& e) {
    msg = e.what();
  }
  EXPECT_NE(msg.find(d), std::string::npos) << msg;
  EXPECT_NE(msg.find("model.safetensors"), std::string::npos) << msg;
  EXPECT_NE(msg.find("Q4_K"), std::string::npos) << msg;
}

namespace {

using autoglm::test_support::env_scope;
struct repack_env : env_scope {
  explicit repack_env(const char* value) : env_scope("AUTOGLM_CPU_REPACK", value) {}
};

}  // namespace

// Q4_0 / Q8_0 / Q4_K weights repacked at load into the CPU's 16-row tiles (AUTOGLM_CPU_REPACK=1,
// kernels/cpu/quant_repack.h) give the logits of the file's layout read in place (=0), bit for bit: prompts of 1 and
// 3 tokens (the r16 decode kernel), of 15 (the prefill paths) and one through the vision tower. On a CPU without
// AVX-512 VNNI nothing is repacked and both runs take the same path; the demo's rows (128 inputs) are no whole Q4_K
// block, so its Q4_K file holds llama.cpp's fallback types (the kernel tests cover Q4_K).
TEST_F(weight_quant, weights_repacked_at_load_give_the_logits_of_the_file_layout) {
  const vision_input im = random_image(9, 43);
  const std::vector<int32_t> p = {1458, 1460, 1463, 1466, 1470, 1470, 1470, 1470, 1467, 100, 200, 1464};
  const std::vector<std::vector<int32_t>> texts = {{1458}, {1458, 1460, 1463}, k_text};
  for (dtype t : {dtype::Q4_0, dtype::Q8_0, dtype::Q4_K}) {
    const std::string dir = gguf_dir(dtype_name(t), t);
    std::vector<float> want, got;
    for (const char* repack : {"0", "1"}) {
      const repack_env env(repack);
      std::vector<float>& out = *repack == '0' ? want : got;
      for (const auto& text : texts)
        for (float v : prompt_logits(options(dir), text)) out.push_back(v);
      for (float v : prompt_logits(options(dir), p, {im})) out.push_back(v);
    }
    EXPECT_TRUE(same_bits(want, got)) << dtype_name(t) << ": largest difference " << max_abs_diff(want, got);
  }
}

// The copies kept on disk (AUTOGLM_REPACK_CACHE, ops/repack_cache.h): a first load makes and keeps them, a second maps
// them; both give the logits of the file's layout read in place, bit for bit (the Q4_0 demo GGUF, whose q / k rows
// are permuted copies and whose q / k / v are stacked: keys of copies made at load, not only of file tensors).
TEST_F(weight_quant, copies_kept_on_disk_give_the_logits_of_the_file_layout) {
  const std::string dir = gguf_dir("Q4_0", dtype::Q4_0);
  const std::string cache = ::testing::TempDir() + "autoglm_weight_quant_cache_" + std::to_string(::getpid());
  std::filesystem::remove_all(cache);
  const env_scope cache_env("AUTOGLM_REPACK_CACHE", cache.c_str());
  std::vector<float> want;
  {
    const repack_env off("0");
    want = prompt_logits(options(dir), k_text);
  }
  const repack_env on("1");
  const repack_cache::counts c0 = repack_cache::totals();
  const std::vector<float> first = prompt_logits(options(dir), k_text);
  const repack_cache::counts c1 = repack_cache::totals();
  const std::vector<float> second = prompt_logits(options(dir), k_text);
  const repack_cache::counts c2 = repack_cache::totals();
  EXPECT_TRUE(same_bits(want, first)) << max_abs_diff(want, first);
  EXPECT_TRUE(same_bits(want, second)) << max_abs_diff(want, second);
  EXPECT_EQ(c1.mapped, c0.mapped);
  EXPECT_EQ(c2.written, c1.written) << "the second load makes nothing";
  EXPECT_EQ(c2.mapped - c1.mapped, c1.written - c0.written) << "it maps every copy the first kept";
  if (cpu::r16_decode_available()) EXPECT_GT(c1.written, c0.written) << "the first load keeps its copies";
  else std::printf("note: no copies made on this CPU (no AVX-512 VNNI): nothing kept\n");
  std::filesystem::remove_all(cache);
}

// Copies a source makes at load (a GGUF file's q / k rows permuted to Hugging Face's order, safetensors quantized at
// load) are private: once the CPU's LINEAR weight is repacked from one, the bound weight keeps only its shape and
// dtype and the source hands its copy back (resident memory never holds both); weights read in place from a file
// keep their data, and binding a handed-back tensor again is a clear error. With AUTOGLM_CPU_REPACK=0 nothing is
// copied or let go.
TEST_F(weight_quant, private_copies_are_let_go_once_repacked) {
  if (!cpu::r16_decode_available()) GTEST_SKIP() << "no r16 decode (AVX-512 VNNI) on this CPU";
  const std::string q = "model.language_model.layers.0.self_attn.q_proj.weight";
  const std::string v = "model.language_model.layers.0.self_attn.v_proj.weight";
  const std::string dir = gguf_dir("q4_0", dtype::Q4_0);
  exec_context ctx(device{}, 1);
  {
    const repack_env env("1");
    const auto src = glm4v_gguf::source::open_dir(dir);
    ASSERT_TRUE(src->at(q).private_copy);
    ASSERT_FALSE(src->at(v).private_copy);
    const std::vector<int64_t> q_shape = src->at(q).shape, v_shape = src->at(v).shape;
    weight_binder b(*src, ctx);
    const linear_weight lq = b.linear(q, q_shape, "", shard_kind::COLUMN);
    const linear_weight lv = b.linear(v, v_shape, "", shard_kind::COLUMN);
    EXPECT_FALSE(lq.repacked.empty());
    EXPECT_TRUE(lq.weight_released);
    EXPECT_EQ(lq.weight.shape(), q_shape);
    EXPECT_EQ(lq.weight.type(), dtype::Q4_0);
    EXPECT_TRUE(src->at(q).data.empty());
    EXPECT_FALSE(lv.repacked.empty());
    EXPECT_FALSE(lv.weight_released) << "a view of the file keeps its data";
    EXPECT_FALSE(src->at(v).data.empty());
    try {
      b.linear(q, q_shape, "", shard_kind::COLUMN);
      ADD_FAILURE() << "a handed-back tensor was bound again";
    } catch (const error& e) {
      EXPECT_NE(std::string(e.what()).find("handed back"), std::string::npos) << e.what();
    }
  }
  {
    const repack_env env("0");
    const auto src = glm4v_gguf::source::open_dir(dir);
    weight_binder b(*src, ctx);
    const linear_weight lq = b.linear(q, src->at(q).shape, "", shard_kind::COLUMN);
    EXPECT_TRUE(lq.repacked.empty());
    EXPECT_FALSE(lq.weight_released);
    EXPECT_FALSE(src->at(q).data.empty());
  }
  {
    const repack_env env("1");
    const auto store = tensor_store::open_dir(demo_dir());
    const quantized_source src(*store, [&](const std::string& name, const std::vector<int64_t>&, dtype stored) {
      return name == q ? dtype::Q8_0 : stored;
    });
    ASSERT_TRUE(src.at(q).private_copy);
    weight_binder b(src, ctx);
    const linear_weight lq = b.linear(q, src.at(q).shape, "", shard_kind::COLUMN);
    EXPECT_TRUE(lq.weight_released);
    EXPECT_TRUE(src.at(q).data.empty());
  }
}
