// tests/vision/vision_test.cpp: the GLM-4.1V vision tower against the transformers 5.17 fp32 reference
// (tests/fixtures/ref, made from tests/fixtures/tiny_glm4v), the bicubic position interpolation against an
// independent double-precision implementation of grid_sample's formula, and the errors for bad checkpoints
// and bad inputs.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include <unistd.h>

#include "core/error.h"
#include "formats/safetensors.h"
#include "model/glm4v/config.h"
#include "model/glm4v/vision.h"
#include "model/glm4v/vision_attention.h"

namespace fs = std::filesystem;
using autoglm::glm4v::config;
using autoglm::glm4v::vision_tower;

namespace {

std::string source_dir() { return AUTOGLM_SOURCE_DIR; }
std::string tiny_dir() { return source_dir() + "/tests/fixtures/tiny_glm4v"; }
std::string ref_dir() { return source_dir() + "/tests/fixtures/ref"; }

std::vector<float> read_f32(const std::string& path, size_t expect) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot open " + path);
  std::vector<float> v(expect);
  f.read(reinterpret_cast<char*>(v.data()), std::streamsize(expect * sizeof(float)));
  if (size_t(f.gcount()) != expect * sizeof(float)) throw std::runtime_error("short read " + path);
  f.peek();
  if (!f.eof()) throw std::runtime_error("trailing bytes in " + path);
  return v;
}

std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// Keys' cubic convolution kernel in its piecewise form (A = -0.75), double precision.
double keys(double x) {
  const double a = -0.75;
  x = std::fabs(x);
  if (x <= 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
  if (x < 2.0) return a * x * x * x - 5.0 * a * x * x + 8.0 * a * x - 4.0 * a;
  return 0.0;
}

// grid_sample(bicubic, align_corners=False, padding_mode=border) of a g x g table at source coordinate (sx, sy)
// (in table cells), written directly from the definition: taps at floor-1 .. floor+2 clamped into the table,
// separable Keys weights, all in double.
void reference_interp(const std::vector<float>& table, int g, int dim, double sx, double sy, double* out) {
  const int x0 = int(std::floor(sx)), y0 = int(std::floor(sy));
  for (int c = 0; c < dim; ++c) out[c] = 0.0;
  for (int j = -1; j <= 2; ++j) {
    const double wy = keys(sy - (y0 + j));
    const int yy = std::clamp(y0 + j, 0, g - 1);
    for (int i = -1; i <= 2; ++i) {
      const double wx = keys(sx - (x0 + i));
      const int xx = std::clamp(x0 + i, 0, g - 1);
      for (int c = 0; c < dim; ++c) out[c] += wy * wx * double(table[size_t((yy * g + xx) * dim + c)]);
    }
  }
}

// The exact source coordinate of patch index p of an n-patch axis in a g-cell table.
double exact_source(int p, int n, int g) { return (p + 0.5) * g / n - 0.5; }

// The source coordinate as HF and grid_sample compute it in fp32: normalized ((p + 0.5) / n) * 2 - 1, then
// ((x + 1) * g - 1) / 2. Off the exact value by up to about one ulp of g.
double fp32_source(int p, int n, int g) {
  const float x = ((float(p) + 0.5f) / float(n)) * 2.0f - 1.0f;
  return double(((x + 1.0f) * float(g) - 1.0f) / 2.0f);
}

struct image_case {
  std::string name;
  std::vector<autoglm::vision_input> images;
  std::vector<float> ref;  // [total tokens, out_hidden]
  int64_t ref_cols = 0;
};

std::vector<image_case> load_image_cases() {
  const auto j = nlohmann::json::parse(read_text(ref_dir() + "/cases.json"));
  std::vector<image_case> cases;
  for (const auto& c : j.at("cases")) {
    if (!c.contains("pixel_values")) continue;
    image_case ic;
    ic.name = c.at("name").get<std::string>();
    const auto pshape = c.at("pixel_values").at("shape").get<std::vector<int64_t>>();
    const auto pixels = read_f32(ref_dir() + "/" + c.at("pixel_values").at("file").get<std::string>(),
                                 size_t(pshape[0] * pshape[1]));
    int64_t row = 0;
    for (const auto& g : c.at("image_grid_thw")) {
      autoglm::vision_input in;
      in.grid_t = g[0].get<int32_t>();
      in.grid_h = g[1].get<int32_t>();
      in.grid_w = g[2].get<int32_t>();
      const int64_t rows = int64_t(in.grid_t) * in.grid_h * in.grid_w;
      in.pixel_values.assign(pixels.begin() + row * pshape[1], pixels.begin() + (row + rows) * pshape[1]);
      row += rows;
      ic.images.push_back(std::move(in));
    }
    EXPECT_EQ(row, pshape[0]) << ic.name;
    const auto eshape = c.at("image_embeds").at("shape").get<std::vector<int64_t>>();
    ic.ref = read_f32(ref_dir() + "/" + c.at("image_embeds").at("file").get<std::string>(),
                      size_t(eshape[0] * eshape[1]));
    ic.ref_cols = eshape[1];
    cases.push_back(std::move(ic));
  }
  return cases;
}

class vision_tiny : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    cfg_ = new config(config::load(tiny_dir()));
    store_ = autoglm::tensor_store::open_dir(tiny_dir()).release();
    tower_ = new vision_tower(*cfg_, *store_);
  }
  static void TearDownTestSuite() {
    delete tower_;
    delete store_;
    delete cfg_;
  }
  static config* cfg_;
  static autoglm::tensor_store* store_;
  static vision_tower* tower_;
};
config* vision_tiny::cfg_ = nullptr;
autoglm::tensor_store* vision_tiny::store_ = nullptr;
vision_tower* vision_tiny::tower_ = nullptr;

}  // namespace

// Max |ours - ref| relative to max |ref| over all image tokens of each case.
constexpr double parity_tol = 1e-5;  // measured ~1.5e-6 on the tiny checkpoint

TEST_F(vision_tiny, matches_transformers_fp32_image_embeds) {
  const auto cases = load_image_cases();
  ASSERT_GE(cases.size(), 3u);
  for (const auto& c : cases) {
    std::vector<float> ours;
    for (const auto& img : c.images) {
      const auto e = tower_->encode(img);
      ASSERT_EQ(int64_t(e.size()), int64_t(img.n_tokens()) * cfg_->vision.out_hidden_size) << c.name;
      ours.insert(ours.end(), e.begin(), e.end());
    }
    ASSERT_EQ(ours.size(), c.ref.size()) << c.name;
    ASSERT_EQ(c.ref_cols, cfg_->vision.out_hidden_size);
    double max_diff = 0.0, max_ref = 0.0;
    for (size_t i = 0; i < ours.size(); ++i) {
      ASSERT_TRUE(std::isfinite(ours[i])) << c.name << " element " << i;
      max_diff = std::max(max_diff, std::fabs(double(ours[i]) - double(c.ref[i])));
      max_ref = std::max(max_ref, std::fabs(double(c.ref[i])));
    }
    std::printf("[ parity ] %-20s max|diff| %.3e  max|ref| %.3e  ratio %.3e\n", c.name.c_str(), max_diff, max_ref,
                max_diff / max_ref);
    EXPECT_GT(max_ref, 0.0) << c.name;
    EXPECT_LE(max_diff, parity_tol * max_ref) << c.name;
  }
}

TEST_F(vision_tiny, temporal_frames_are_independent_segments) {
  // Two identical frames: each frame attends only to itself with the same positions, so the output is the
  // single-frame output twice.
  const auto cases = load_image_cases();
  ASSERT_FALSE(cases.empty());
  const autoglm::vision_input& one = cases[0].images[0];
  autoglm::vision_input two = one;
  two.grid_t = 2;
  two.pixel_values.insert(two.pixel_values.end(), one.pixel_values.begin(), one.pixel_values.end());
  const auto a = tower_->encode(one);
  const auto b = tower_->encode(two);
  ASSERT_EQ(b.size(), 2 * a.size());
  double max_a = 0.0;
  for (float v : a) max_a = std::max(max_a, double(std::fabs(v)));
  for (size_t i = 0; i < b.size(); ++i) ASSERT_NEAR(b[i], a[i % a.size()], 1e-5 * max_a) << i;
}

TEST_F(vision_tiny, dump_hook_reports_every_stage) {
  const auto cases = load_image_cases();
  const autoglm::vision_input& img = cases[0].images[0];
  std::vector<std::string> names;
  std::vector<float> last;
  vision_tower tower(*cfg_, *store_);
  tower.set_dump([&](const std::string& name, const float* data, int64_t rows, int64_t cols) {
    names.push_back(name);
    if (name == "merger") last.assign(data, data + rows * cols);
  });
  const auto out = tower.encode(img);
  const std::vector<std::string> expect_front = {"patch_embed", "post_conv_layernorm", "pos_embed", "embeddings",
                                                 "blocks.0"};
  ASSERT_GE(names.size(), expect_front.size() + 3);
  EXPECT_TRUE(std::equal(expect_front.begin(), expect_front.end(), names.begin()));
  EXPECT_EQ(names.back(), "merger");
  EXPECT_EQ(last, out);
}

TEST_F(vision_tiny, rejects_bad_inputs) {
  autoglm::vision_input in;
  in.grid_t = 1;
  in.grid_h = 3;  // not a multiple of the merge size
  in.grid_w = 4;
  in.pixel_values.assign(size_t(12 * cfg_->vision.patch_dim()), 0.0f);
  EXPECT_THROW(tower_->encode(in), autoglm::error);
  in.grid_h = 4;
  in.pixel_values.assign(size_t(16 * cfg_->vision.patch_dim() - 1), 0.0f);  // one float short
  EXPECT_THROW(tower_->encode(in), autoglm::error);
  in.grid_h = 0;
  in.pixel_values.clear();
  EXPECT_THROW(tower_->encode(in), autoglm::error);
}

TEST(vision_positions, processor_patch_order) {
  std::vector<int32_t> h, w;
  autoglm::glm4v::vision_patch_positions(4, 6, 2, h, w);
  ASSERT_EQ(h.size(), 24u);
  // First 2x2 block, then the block to its right.
  const std::vector<int32_t> h8 = {0, 0, 1, 1, 0, 0, 1, 1}, w8 = {0, 1, 0, 1, 2, 3, 2, 3};
  EXPECT_TRUE(std::equal(h8.begin(), h8.end(), h.begin()));
  EXPECT_TRUE(std::equal(w8.begin(), w8.end(), w.begin()));
  // Second block row starts after grid_w/2 blocks.
  EXPECT_EQ(h[12], 2);
  EXPECT_EQ(w[12], 0);
  EXPECT_EQ(h.back(), 3);
  EXPECT_EQ(w.back(), 5);
}

TEST(vision_positions, bicubic_matches_double_reference) {
  const int g = 24, dim = 5;
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> table(size_t(g * g * dim));
  for (auto& v : table) v = nd(rng);
  double max_table = 0.0;
  for (float v : table) max_table = std::max(max_table, double(std::fabs(v)));
  // Up- and down-sampling, odd and mixed aspect, a single block row, the real 1080x2400 screenshot grid.
  const std::vector<std::pair<int, int>> grids = {{8, 6}, {4, 10}, {24, 24}, {2, 2}, {30, 18}, {78, 172}, {48, 2}};
  for (auto [gh, gw] : grids) {
    std::vector<int32_t> ph, pw;
    autoglm::glm4v::vision_patch_positions(gh, gw, 2, ph, pw);
    const int64_t n = int64_t(ph.size());
    std::vector<float> out(size_t(n * dim));
    autoglm::glm4v::interpolate_pos_embed(table.data(), g, dim, gh, gw, ph.data(), pw.data(), n, out.data());
    std::vector<double> ref(static_cast<size_t>(dim)), ref32(static_cast<size_t>(dim));
    double err_exact = 0.0, err_fp32 = 0.0;
    for (int64_t p = 0; p < n; ++p) {
      const int h = ph[size_t(p)], w = pw[size_t(p)];
      reference_interp(table, g, dim, exact_source(w, gw, g), exact_source(h, gh, g), ref.data());
      reference_interp(table, g, dim, fp32_source(w, gw, g), fp32_source(h, gh, g), ref32.data());
      for (int c = 0; c < dim; ++c) {
        const double o = out[size_t(p * dim + c)];
        err_exact = std::max(err_exact, std::fabs(o - ref[size_t(c)]));
        err_fp32 = std::max(err_fp32, std::fabs(o - ref32[size_t(c)]));
      }
    }
    // Same source coordinates: only fp32 rounding of weights and sums remains.
    EXPECT_LE(err_fp32, 1e-6 * max_table) << gh << "x" << gw;
    // Exact coordinates: the fp32 coordinate (what the reference uses too) is off by up to ~2e-6 cells.
    EXPECT_LE(err_exact, 1e-5 * max_table) << gh << "x" << gw;
  }
}

TEST(vision_positions, exact_lookup_when_grid_equals_table) {
  const int g = 24, dim = 3;
  std::vector<float> table(size_t(g * g * dim));
  for (size_t i = 0; i < table.size(); ++i) table[i] = float(std::sin(0.37 * double(i)) * 3.0);
  std::vector<int32_t> ph, pw;
  autoglm::glm4v::vision_patch_positions(g, g, 2, ph, pw);
  std::vector<float> out(size_t(g * g * dim));
  autoglm::glm4v::interpolate_pos_embed(table.data(), g, dim, g, g, ph.data(), pw.data(), int64_t(ph.size()), out.data());
  // Each patch lands on its own table cell; the fp32 normalized coordinate misses the knot by at most ~2e-6
  // cells, which moves the value by at most that times the local slope (|slope| <= ~3 here).
  double max_err = 0.0;
  for (size_t p = 0; p < ph.size(); ++p)
    for (int c = 0; c < dim; ++c)
      max_err = std::max(max_err, std::fabs(double(out[p * dim + size_t(c)]) -
                                            double(table[size_t((ph[p] * g + pw[p]) * dim + c)])));
  EXPECT_LE(max_err, 2e-5);
  // The 2-D axes are not swapped: a table varying only along columns gives values varying only with w.
  for (int r = 0; r < g; ++r)
    for (int c = 0; c < g; ++c)
      for (int k = 0; k < dim; ++k) table[size_t((r * g + c) * dim + k)] = float(c);
  autoglm::glm4v::interpolate_pos_embed(table.data(), g, dim, g, g, ph.data(), pw.data(), int64_t(ph.size()), out.data());
  for (size_t p = 0; p < ph.size(); ++p) EXPECT_NEAR(out[p * dim], float(pw[p]), 1e-4f) << p;
}

TEST(vision_attention, blocked_matches_double_reference) {
  // Sizes straddling the 16-key panels, the 48-row query blocks, the 3/6-row register tiles and the 512-key
  // P·V tiles; head_dim 32 (tiny model), 128 (real model) and 40 (a scalar remainder of dims).
  const std::vector<std::array<int64_t, 3>> shapes = {{1, 2, 32}, {7, 2, 32}, {48, 1, 128}, {301, 2, 128},
                                                       {530, 1, 40}, {1000, 1, 128}};
  std::mt19937 rng(11);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (const auto& [n, heads, hd] : shapes) {
    const int64_t dim = heads * hd, stride = 3 * dim + 5;  // a padded row, as inside a wider buffer
    std::vector<float> qkv(size_t(n * stride));
    for (auto& v : qkv) v = 2.0f * nd(rng);
    std::vector<float> out(size_t(n * dim)), ref(size_t(n * dim));
    autoglm::glm4v::detail::vision_attention(qkv.data(), stride, n, heads, hd, out.data(), dim);
    autoglm::glm4v::detail::vision_attention_ref(qkv.data(), stride, n, heads, hd, ref.data(), dim);
    double max_err = 0.0, max_ref = 0.0;
    for (size_t i = 0; i < out.size(); ++i) {
      max_err = std::max(max_err, std::fabs(double(out[i]) - double(ref[i])));
      max_ref = std::max(max_ref, std::fabs(double(ref[i])));
    }
    // Logits reach ~|40| here; fp32 rounding of a 128-term dot (either summation order) is ~1e-5 of that.
    EXPECT_LE(max_err, 1e-5 * max_ref) << "n=" << n << " heads=" << heads << " head_dim=" << hd;
  }
}

namespace {

// Copies the tiny checkpoint into a temp dir, rewriting the safetensors header through `edit` (the data block
// is kept byte for byte, so only names and shapes with the same byte size may change).
fs::path edited_checkpoint(const std::string& tag, const std::function<void(nlohmann::json&)>& edit) {
  const fs::path dir = fs::temp_directory_path() / ("autoglm_vision_test_" + tag + "_" + std::to_string(::getpid()));
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

std::string construct_error(const fs::path& dir) {
  const config cfg = config::load(dir.string());
  auto store = autoglm::tensor_store::open_dir(dir.string());
  try {
    vision_tower tower(cfg, *store);
  } catch (const autoglm::error& e) {
    return e.what();
  }
  return {};
}

}  // namespace

TEST(vision_checkpoint, missing_tensor_is_named) {
  const std::string key = "model.visual.blocks.1.mlp.up_proj.weight";
  const fs::path dir = edited_checkpoint("missing", [&](nlohmann::json& h) {
    ASSERT_TRUE(h.contains(key));
    h[key + ".renamed"] = h[key];
    h.erase(key);
  });
  const std::string msg = construct_error(dir);
  fs::remove_all(dir);
  EXPECT_NE(msg.find(key), std::string::npos) << msg;
}

TEST(vision_checkpoint, wrong_shape_is_named) {
  const std::string key = "model.visual.embeddings.position_embedding.weight";
  const fs::path dir = edited_checkpoint("shape", [&](nlohmann::json& h) {
    ASSERT_TRUE(h.contains(key));
    auto shape = h[key]["shape"].get<std::vector<int64_t>>();
    ASSERT_EQ(shape.size(), 2u);
    h[key]["shape"] = std::vector<int64_t>{shape[1], shape[0]};  // same bytes, transposed
  });
  const std::string msg = construct_error(dir);
  fs::remove_all(dir);
  EXPECT_NE(msg.find(key), std::string::npos) << msg;
}

TEST(vision_checkpoint, tiny_checkpoint_binds) {
  const config cfg = config::load(tiny_dir());
  auto store = autoglm::tensor_store::open_dir(tiny_dir());
  EXPECT_NO_THROW(vision_tower(cfg, *store));
}
