// tests/media/preprocess_parity_test.cpp: decoding, resizing and preprocessing against the HF reference dumped by
// tests/fixtures/make_image_fixtures.py into tests/fixtures/images_ref/ (transformers 5.x, both backends).
// Tolerance: none. For both backends (PIL: Glm4vImageProcessorPil; torchvision: Glm4vImageProcessor, the default)
// the decoded pixels, the resized uint8 image and every stored pixel_values element must match exactly, with the
// matching hf_image_backend. Cross-backend (our PIL-exact resize vs the torchvision reference) is reported only.
// Known divergence: 16-bit grey PNG (PIL clips I;16 to 255 in convert("RGB"); we keep the high byte).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>

#include <nlohmann/json.hpp>
#include <zlib.h>

#include "core/error.h"
#include "media/glm4v_preprocess.h"

namespace autoglm {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

fs::path ref_dir() {
  const char* env = std::getenv("AUTOGLM_SOURCE_DIR");
  return fs::path(env && *env ? env : AUTOGLM_SOURCE_DIR) / "tests" / "fixtures" / "images_ref";
}

std::vector<uint8_t> read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) throw std::runtime_error("cannot open " + p.string());
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}

std::vector<float> read_f32(const fs::path& p) {
  auto b = read_file(p);
  std::vector<float> v(b.size() / 4);
  std::memcpy(v.data(), b.data(), v.size() * 4);  // little-endian host assumed (x86/arm64)
  return v;
}

uint32_t crc(const std::vector<uint8_t>& v) {
  return static_cast<uint32_t>(crc32(0, v.data(), static_cast<uInt>(v.size())));
}

int max_abs_diff(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  if (a.size() != b.size()) return 1000;
  int m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(int(a[i]) - int(b[i])));
  return m;
}

class parity : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(ref_dir() / "image_fixtures.json"))
      GTEST_SKIP() << "no HF fixtures at " << ref_dir()
                   << " (run tests/fixtures/make_image_fixtures.py OUT_DIR and copy OUT_DIR there)";
    std::ifstream f(ref_dir() / "image_fixtures.json");
    j_ = json::parse(f);
  }
  image_rgb8 decode(const std::string& name, alpha_mode mode) {
    for (const auto& im : j_["images"])
      if (im["name"] == name) {
        image_limits lim;
        lim.alpha = mode;
        return decode_image_file((ref_dir() / im["file"].get<std::string>()).string(), lim);
      }
    throw std::runtime_error("no image " + name);
  }
  json j_;
};

// 16-bit grey: PIL opens it as mode I and convert("RGB") clips values > 255 to white; we keep the high byte.
bool known_decode_divergence(const std::string& name) { return name.rfind("gray16", 0) == 0; }

TEST_F(parity, decoded_pixels_match_pil) {
  int n_checked = 0;
  for (const auto& im : j_["images"]) {
    const std::string name = im["name"];
    if (known_decode_divergence(name)) continue;
    SCOPED_TRACE(name);
    auto drop = decode(name, alpha_mode::drop);
    EXPECT_EQ(drop.width, im["width"].get<int>());
    EXPECT_EQ(drop.height, im["height"].get<int>());
    EXPECT_EQ(crc(drop.rgb), im["dec_crc32"].get<uint32_t>()) << "HF convert(\"RGB\") pixels differ";
    if (im.contains("dec_file") && !im["dec_file"].is_null()) {
      auto want = read_file(ref_dir() / im["dec_file"].get<std::string>());
      const int d = max_abs_diff(drop.rgb, want);
      std::printf("[parity] decode %-28s max|diff| %d\n", name.c_str(), d);
      EXPECT_EQ(d, 0);
    }
    if (im.contains("decv_crc32")) {
      auto comp = decode(name, alpha_mode::composite_rgba_white);
      EXPECT_EQ(crc(comp.rgb), im["decv_crc32"].get<uint32_t>()) << "vLLM RGBA-over-white pixels differ";
    }
    ++n_checked;
  }
  EXPECT_GT(n_checked, 10);
}

TEST_F(parity, resize_matches_pil_bit_for_bit) {
  for (const auto& r : j_["pil_resize"]) {
    const std::string name = r["image"];
    const int w = r["width"], h = r["height"];
    SCOPED_TRACE(name + " -> " + std::to_string(w) + "x" + std::to_string(h));
    auto src = decode(name, alpha_mode::drop);
    auto got = resize_bicubic(src, w, h);
    auto want = read_file(ref_dir() / r["file"].get<std::string>());
    const int d = max_abs_diff(got.rgb, want);
    std::printf("[parity] PIL resize %s %dx%d -> %dx%d: max|diff| %d\n", name.c_str(), src.width, src.height, w, h, d);
    EXPECT_EQ(d, 0);
    EXPECT_EQ(crc(got.rgb), r["crc32"].get<uint32_t>());
  }
}

TEST_F(parity, preprocess_matches_hf_processor) {
  std::map<std::string, json> by_key;
  for (const auto& e : j_["entries"])
    by_key[e["image"].get<std::string>() + "_" + e["setting"].get<std::string>() + "_" + e["backend"].get<std::string>()] = e;
  std::map<std::string, float> worst;  // per backend
  for (const auto& e : j_["entries"]) {
    if (e.contains("error")) continue;
    const std::string name = e["image"], setting = e["setting"], backend = e["backend"];
    SCOPED_TRACE(name + " " + setting + " " + backend);
    glm4v_preprocess_config cfg;
    cfg.min_pixels = e["size"]["shortest_edge"];
    cfg.max_pixels = e["size"]["longest_edge"];
    cfg.backend = backend == "torchvision" ? hf_image_backend::torchvision : hf_image_backend::pil;
    // HF was handed the PIL image itself, so its convert_to_rgb (drop alpha) applies.
    auto src = decode(name, alpha_mode::drop);
    auto [h, w] = glm4v_smart_resize(src.height, src.width, cfg);
    ASSERT_EQ(h, e["resized_hw"][0].get<int>());
    ASSERT_EQ(w, e["resized_hw"][1].get<int>());
    auto resized = (h == src.height && w == src.width) ? src
                   : cfg.backend == hf_image_backend::pil ? resize_bicubic(src, w, h)
                                                          : resize_bicubic_torchvision(src, w, h);
    auto px = glm4v_patchify(resized, cfg);
    EXPECT_EQ(px.grid_h, e["image_grid_thw"][1].get<int>());
    EXPECT_EQ(px.grid_w, e["image_grid_thw"][2].get<int>());
    EXPECT_EQ(px.n_tokens(), e["n_tokens"].get<int>());
    EXPECT_EQ(int64_t(px.values.size()), e["pixel_values_shape"][0].get<int64_t>() * 1176);

    const bool exact_expected = !known_decode_divergence(name);
    const bool u8_match = crc(resized.rgb) == e["resized_u8_crc32"].get<uint32_t>();
    // The fixture files of a deduplicated entry live under the entry it repeats.
    const json& store = e.contains("same_as") ? by_key[e["same_as"].get<std::string>()] : e;
    int u8_diff = -1;
    if (store.contains("resized_u8_file") && !store["resized_u8_file"].is_null())
      u8_diff = max_abs_diff(resized.rgb, read_file(ref_dir() / store["resized_u8_file"].get<std::string>()));
    float pix_diff = -1;
    if (store.contains("pix_file") && !store["pix_file"].is_null()) {
      auto ref = read_f32(ref_dir() / store["pix_file"].get<std::string>());
      const size_t k = store["pix_stride"], off = store["pix_offset"];
      pix_diff = 0;
      for (size_t i = 0; i < ref.size(); ++i) {
        const size_t idx = off + i * k;
        ASSERT_LT(idx, px.values.size());
        pix_diff = std::max(pix_diff, std::fabs(px.values[idx] - ref[i]));
      }
    }
    double sum = 0;
    for (float v : px.values) sum += v;
    const double sum_rel = std::fabs(sum - e["pix_sum"].get<double>()) / std::max(1.0, double(px.values.size()));
    if (!e.contains("same_as"))
      std::printf("[parity] %-26s %-7s %-11s %4dx%-4d u8 %s max|diff| %2d  pixel max|diff| %.3g  mean sum diff %.2g\n",
                  name.c_str(), setting.c_str(), backend.c_str(), w, h, u8_match ? "==" : "!=", u8_diff, pix_diff,
                  sum_rel);
    if (!known_decode_divergence(name)) worst[backend] = std::max(worst[backend], pix_diff);
    if (exact_expected) {
      EXPECT_TRUE(u8_match) << "resized uint8 differs from PIL";
      EXPECT_LE(u8_diff, 0);
      EXPECT_LE(pix_diff, 0.0f);
      EXPECT_LT(sum_rel, 1e-9);
    }
    if (backend == "torchvision" && !e.contains("same_as") && store.contains("resized_u8_file") && !store["resized_u8_file"].is_null() &&
        !known_decode_divergence(name)) {
      // How far the Pillow-exact resampler is from torchvision's (what a PIL-based server would differ by).
      auto pil_resized = (h == src.height && w == src.width) ? src : resize_bicubic(src, w, h);
      const int cross = max_abs_diff(pil_resized.rgb, read_file(ref_dir() / store["resized_u8_file"].get<std::string>()));
      std::printf("[parity]   cross-check: Pillow-exact resize vs torchvision reference max|diff| %d\n", cross);
      EXPECT_LE(cross, 2);
    }
  }
  for (const auto& [b, v] : worst) std::printf("[parity] worst pixel_values max|diff| vs %s backend: %.4g\n", b.c_str(), v);
}

}  // namespace
}  // namespace autoglm
