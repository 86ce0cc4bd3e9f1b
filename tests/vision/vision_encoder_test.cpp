// tests/vision/vision_encoder_test.cpp: the GLM-4.1V vision tower written over ops (model/glm4v/vision_encoder)
// against the transformers 5.17 fp32 reference (tests/fixtures/ref, made from tests/fixtures/tiny_glm4v), its
// dumps, its input errors and the checkpoint errors of its weight binding (missing / mis-shaped tensors, a dtype
// the device cannot run). vision_encoder_vs_old_test.cpp compares it with the old tower while that exists.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include <unistd.h>

#include "core/error.h"
#include "formats/safetensors.h"
#include "kernels/cpu/gemm_bf16.h"
#include "model/glm4v/config.h"
#include "model/glm4v/vision_encoder.h"
#include "ops/ops.h"

namespace fs = std::filesystem;
using namespace autoglm;
using autoglm::glm4v::config;
using autoglm::glm4v::vision_encoder;

namespace {

std::string tiny_dir() { return std::string(AUTOGLM_SOURCE_DIR) + "/tests/fixtures/tiny_glm4v"; }
std::string ref_dir() { return std::string(AUTOGLM_SOURCE_DIR) + "/tests/fixtures/ref"; }

std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

std::vector<float> read_f32(const std::string& path, size_t expect) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot open " + path);
  std::vector<float> v(expect);
  f.read(reinterpret_cast<char*>(v.data()), std::streamsize(expect * sizeof(float)));
  if (size_t(f.gcount()) != expect * sizeof(float)) throw std::runtime_error("short read " + path);
  return v;
}

struct image_case {
  std::string name;
  std::vector<vision_input> images;
  std::vector<float> ref;  // [total tokens, out_hidden]
};

std::vector<image_case> load_image_cases() {
  const auto j = nlohmann::json::parse(read_text(ref_dir() + "/cases.json"));
  std::vector<image_case> cases;
  for (const auto& c : j.at("cases")) {
    if (!c.contains("pixel_values")) continue;
    image_case ic;
    ic.name = c.at("name").get<std::string>();
    const auto ps = c.at("pixel_values").at("shape").get<std::vector<int64_t>>();
    const auto pixels =
        read_f32(ref_dir() + "/" + c.at("pixel_values").at("file").get<std::string>(), size_t(ps[0] * ps[1]));
    int64_t row = 0;
    for (const auto& g : c.at("image_grid_thw")) {
      vision_input in;
      in.grid_t = g[0].get<int32_t>();
      in.grid_h = g[1].get<int32_t>();
      in.grid_w = g[2].get<int32_t>();
      const int64_t rows = int64_t(in.grid_t) * in.grid_h * in.grid_w;
      in.pixel_values.assign(pixels.begin() + row * ps[1], pixels.begin() + (row + rows) * ps[1]);
      row += rows;
      ic.images.push_back(std::move(in));
    }
    const auto es = c.at("image_embeds").at("shape").get<std::vector<int64_t>>();
    ic.ref = read_f32(ref_dir() + "/" + c.at("image_embeds").at("file").get<std::string>(), size_t(es[0] * es[1]));
    cases.push_back(std::move(ic));
  }
  return cases;
}

std::vector<float> host_values(exec_context& ctx, const tensor& t) {
  const tensor h = ops::host_f32(ctx, t);
  return std::vector<float>(h.ptr<float>(), h.ptr<float>() + h.n_elements());
}

// On the exact CPU GEMM (kernels/cpu/gemm_bf16.h): the fp32 reference, and two frames against one (bit for bit,
// which the default precision gives only while every linear of both encodes is on the same side of its row
// threshold).
class encoder_tiny : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    process_precision_ = cpu::get_cpu_gemm_precision();
    cpu::set_cpu_gemm_precision(cpu::cpu_gemm_precision::EXACT);
    cfg_ = new config(config::load(tiny_dir()));
    store_ = tensor_store::open_dir(tiny_dir()).release();
    ctx_ = new exec_context(device{}, 2);
    encoder_ = new vision_encoder(cfg_->vision, glm4v::bind_vision_weights(*cfg_, *store_, *ctx_));
  }
  static void TearDownTestSuite() {
    delete encoder_;
    delete ctx_;
    delete store_;
    delete cfg_;
    cpu::set_cpu_gemm_precision(process_precision_);
  }
  static inline cpu::cpu_gemm_precision process_precision_ = cpu::cpu_gemm_precision::EXACT;
  static config* cfg_;
  static tensor_store* store_;
  static exec_context* ctx_;
  static vision_encoder* encoder_;
};
config* encoder_tiny::cfg_ = nullptr;
tensor_store* encoder_tiny::store_ = nullptr;
exec_context* encoder_tiny::ctx_ = nullptr;
vision_encoder* encoder_tiny::encoder_ = nullptr;

}  // namespace

// Max |ours - ref| relative to max |ref| over all image tokens of each case; measured 1.6e-6 (the old tower's
// figure: the two are bit-identical).
constexpr double parity_tol = 1e-5;

TEST_F(encoder_tiny, matches_transformers_fp32_image_embeds) {
  const auto cases = load_image_cases();
  ASSERT_GE(cases.size(), 3u);
  for (const auto& c : cases) {
    std::vector<float> ours;
    for (const auto& img : c.images) {
      const tensor e = encoder_->encode(*ctx_, img);
      ASSERT_EQ(e.rows(), img.n_tokens()) << c.name;
      ASSERT_EQ(e.cols(), cfg_->vision.out_hidden_size) << c.name;
      const auto v = host_values(*ctx_, e);
      ours.insert(ours.end(), v.begin(), v.end());
    }
    ASSERT_EQ(ours.size(), c.ref.size()) << c.name;
    double max_diff = 0.0, max_ref = 0.0;
    for (size_t i = 0; i < ours.size(); ++i) {
      ASSERT_TRUE(std::isfinite(ours[i])) << c.name << " element " << i;
      max_diff = std::max(max_diff, std::fabs(double(ours[i]) - double(c.ref[i])));
      max_ref = std::max(max_ref, std::fabs(double(c.ref[i])));
    }
    std::printf("[ parity ] %-20s max|diff| %.3e  max|ref| %.3e  ratio %.3e\n", c.name.c_str(), max_diff, max_ref,
                max_diff / max_ref);
    EXPECT_LE(max_diff, parity_tol * max_ref) << c.name;
  }
}

TEST_F(encoder_tiny, temporal_frames_are_independent_segments) {
  // Two identical frames: each frame attends only to itself with the same positions, so the output is the
  // single-frame output twice.
  const vision_input one = load_image_cases()[0].images[0];
  vision_input two = one;
  two.grid_t = 2;
  two.pixel_values.insert(two.pixel_values.end(), one.pixel_values.begin(), one.pixel_values.end());
  const auto a = host_values(*ctx_, encoder_->encode(*ctx_, one));
  const auto b = host_values(*ctx_, encoder_->encode(*ctx_, two));
  ASSERT_EQ(b.size(), 2 * a.size());
  for (size_t i = 0; i < b.size(); ++i) ASSERT_EQ(b[i], a[i % a.size()]) << i;
}

TEST_F(encoder_tiny, dumps_every_stage_under_the_old_names) {
  const vision_input img = load_image_cases()[0].images[0];
  std::vector<std::string> names;
  std::vector<float> last;
  exec_context ctx(device{}, 2);
  ctx.set_dump([&](const std::string& name, const tensor& t) {
    names.push_back(name);
    if (name == "merger") last.assign(t.ptr<float>(), t.ptr<float>() + t.n_elements());
  });
  const auto out = host_values(ctx, encoder_->encode(ctx, img));
  std::vector<std::string> expect = {"patch_embed", "post_conv_layernorm", "pos_embed", "embeddings"};
  for (int32_t i = 0; i < cfg_->vision.depth; ++i) expect.push_back("blocks." + std::to_string(i));
  for (const char* s : {"post_layernorm", "downsample", "merger"}) expect.push_back(s);
  EXPECT_EQ(names, expect);
  EXPECT_EQ(last, out);
}

TEST_F(encoder_tiny, rejects_bad_inputs) {
  vision_input in;
  in.grid_t = 1;
  in.grid_h = 3;  // not a multiple of the merge size
  in.grid_w = 4;
  in.pixel_values.assign(size_t(12 * cfg_->vision.patch_dim()), 0.0f);
  EXPECT_THROW(encoder_->encode(*ctx_, in), error);
  in.grid_h = 4;
  in.pixel_values.assign(size_t(16 * cfg_->vision.patch_dim() - 1), 0.0f);  // one float short
  EXPECT_THROW(encoder_->encode(*ctx_, in), error);
  in.grid_h = 0;
  in.pixel_values.clear();
  EXPECT_THROW(encoder_->encode(*ctx_, in), error);
  in.grid_h = 4;
  in.grid_t = 0;
  EXPECT_THROW(encoder_->encode(*ctx_, in), error);
}

TEST(frame_patch_positions, processor_patch_order) {
  std::vector<int32_t> h, w;
  glm4v::frame_patch_positions(4, 6, 2, h, w);
  ASSERT_EQ(h.size(), 24u);
  // First 2x2 block, then the block to its right; the second block row starts after grid_w/2 blocks.
  const std::vector<int32_t> h8 = {0, 0, 1, 1, 0, 0, 1, 1}, w8 = {0, 1, 0, 1, 2, 3, 2, 3};
  EXPECT_TRUE(std::equal(h8.begin(), h8.end(), h.begin()));
  EXPECT_TRUE(std::equal(w8.begin(), w8.end(), w.begin()));
  EXPECT_EQ(h[12], 2);
  EXPECT_EQ(w[12], 0);
  EXPECT_EQ(h.back(), 3);
  EXPECT_EQ(w.back(), 5);
}

namespace {

// Copies the tiny checkpoint into a temp dir, rewriting the safetensors header through `edit` (the data block is
// kept byte for byte, so only names, shapes and dtypes of the same byte size may change).
fs::path edited_checkpoint(const std::string& tag, const std::function<void(nlohmann::json&)>& edit) {
  const fs::path dir = fs::temp_directory_path() / ("autoglm_encoder_test_" + tag + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  for (const char* f : {"config.json", "generation_config.json"})
    fs::copy_file(fs::path(tiny_dir()) / f, dir / f, fs::copy_options::overwrite_existing);
  const std::string bytes = read_text(tiny_dir() + "/model.safetensors");
  uint64_t hlen = 0;
  std::memcpy(&hlen, bytes.data(), 8);
  nlohmann::json header = nlohmann::json::parse(bytes.substr(8, size_t(hlen)));
  edit(header);
  const std::string nh = header.dump();
  const uint64_t nlen = nh.size();
  std::ofstream out(dir / "model.safetensors", std::ios::binary);
  out.write(reinterpret_cast<const char*>(&nlen), 8);
  out.write(nh.data(), std::streamsize(nh.size()));
  out.write(bytes.data() + 8 + hlen, std::streamsize(bytes.size() - 8 - hlen));
  return dir;
}

std::string bind_error(const fs::path& dir) {
  const config cfg = config::load(dir.string());
  auto store = tensor_store::open_dir(dir.string());
  exec_context ctx(device{}, 1);
  std::string msg;
  try {
    glm4v::bind_vision_weights(cfg, *store, ctx);
  } catch (const error& e) {
    msg = e.what();
  }
  fs::remove_all(dir);
  return msg;
}

}  // namespace

TEST(vision_encoder_checkpoint, missing_tensor_is_named) {
  const std::string key = "model.visual.blocks.1.mlp.up_proj.weight";
  const std::string msg = bind_error(edited_checkpoint("missing", [&](nlohmann::json& h) {
    h[key + ".renamed"] = h[key];
    h.erase(key);
  }));
  EXPECT_NE(msg.find("missing tensor '" + key + "'"), std::string::npos) << msg;
}

TEST(vision_encoder_checkpoint, wrong_shape_names_file_and_tensor) {
  const std::string key = "model.visual.embeddings.position_embedding.weight";
  const std::string msg = bind_error(edited_checkpoint("shape", [&](nlohmann::json& h) {
    auto shape = h[key]["shape"].get<std::vector<int64_t>>();
    h[key]["shape"] = std::vector<int64_t>{shape[1], shape[0]};  // same bytes, transposed
  }));
  EXPECT_NE(msg.find("model.safetensors: tensor '" + key + "' has shape"), std::string::npos) << msg;
}

namespace {

// The tiny checkpoint with one tensor replaced (same name and shape, another dtype): what a GGUF or quantized
// source would hand the binder.
class patched_source : public tensor_source {
 public:
  patched_source(const tensor_source& base, const std::string& name, dtype type) : base_(base) {
    patched_ = base.at(name);
    held_ = tensor::empty_host(type, patched_.data.shape());
    std::memset(held_.data(), 0, held_.n_bytes());
    patched_.data = held_;
  }
  const std::string& location() const override { return base_.location(); }
  const entry* find(const std::string& name) const override {
    return name == patched_.name ? &patched_ : base_.find(name);
  }
  std::vector<std::string> names() const override { return base_.names(); }

 private:
  const tensor_source& base_;
  entry patched_;
  tensor held_;
};

std::string bind_error(const tensor_source& src) {
  const config cfg = config::load(tiny_dir());
  exec_context ctx(device{}, 1);
  try {
    glm4v::bind_vision_weights(cfg, src, ctx);
  } catch (const error& e) {
    return e.what();
  }
  return {};
}

}  // namespace

TEST(vision_encoder_checkpoint, weight_dtype_without_a_kernel_names_tensor_dtype_and_device) {
  auto store = tensor_store::open_dir(tiny_dir());
  const std::string key = "model.visual.blocks.0.attn.proj.weight";
  const std::string msg = bind_error(patched_source(*store, key, dtype::I32));
  EXPECT_NE(msg.find("tensor '" + key + "' has dtype I32"), std::string::npos) << msg;
  EXPECT_NE(msg.find("no linear kernel for I32 on cpu"), std::string::npos) << msg;
  EXPECT_NE(msg.find("model.safetensors"), std::string::npos) << msg;
  // A norm weight must be a float type (it is converted to F32 for the device).
  const std::string norm = "model.visual.blocks.1.norm2.weight";
  const std::string msg2 = bind_error(patched_source(*store, norm, dtype::I32));
  EXPECT_NE(msg2.find("tensor '" + norm + "' has dtype I32"), std::string::npos) << msg2;
  // The same weight as F16 binds (the CPU backend runs F32, F16 and BF16 linears).
  EXPECT_EQ(bind_error(patched_source(*store, key, dtype::F16)), "");
}
