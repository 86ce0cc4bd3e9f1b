// tests/model/fixture_io.h: reading the Hugging Face reference outputs in tests/fixtures/ref/.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "autoglm/types.h"

namespace autoglm::test {

inline std::string source_dir() { return AUTOGLM_SOURCE_DIR; }
inline std::string fixture_model_dir() { return source_dir() + "/tests/fixtures/tiny_glm4v"; }
inline std::string ref_dir() { return source_dir() + "/tests/fixtures/ref"; }

inline nlohmann::json load_cases() {
  std::ifstream in(ref_dir() + "/cases.json");
  if (!in) throw std::runtime_error("missing tests/fixtures/ref/cases.json");
  return nlohmann::json::parse(in);
}

// Reads a float32 file described by {"file": name, "shape": [...]}; returns the values and the shape.
inline std::vector<float> load_f32(const nlohmann::json& desc, std::vector<int64_t>* shape = nullptr) {
  std::string path = ref_dir() + "/" + desc["file"].get<std::string>();
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("missing " + path);
  int64_t n = 1;
  std::vector<int64_t> s = desc["shape"].get<std::vector<int64_t>>();
  for (int64_t d : s) n *= d;
  std::vector<float> v(static_cast<size_t>(n));
  in.read(reinterpret_cast<char*>(v.data()), std::streamsize(n * 4));
  if (in.gcount() != n * 4) throw std::runtime_error("short file " + path);
  if (shape) *shape = s;
  return v;
}

// A case's images as HF's processor made them: pixel_values split by image_grid_thw (none for a text case).
inline std::vector<vision_input> fixture_images(const nlohmann::json& c) {
  std::vector<vision_input> out;
  if (!c.contains("pixel_values")) return out;
  const std::vector<float> all = load_f32(c["pixel_values"]);
  const size_t patch_dim = all.size() / size_t(c["pixel_values"]["shape"][0].get<int64_t>());
  size_t offset = 0;
  for (const auto& g : c["image_grid_thw"]) {
    vision_input v;
    v.grid_t = g[0];
    v.grid_h = g[1];
    v.grid_w = g[2];
    const size_t n = size_t(v.grid_t * v.grid_h * v.grid_w) * patch_dim;
    if (offset + n > all.size()) throw std::runtime_error("pixel_values shorter than image_grid_thw says");
    v.pixel_values.assign(all.begin() + long(offset), all.begin() + long(offset + n));
    offset += n;
    out.push_back(std::move(v));
  }
  if (offset != all.size()) throw std::runtime_error("pixel_values longer than image_grid_thw says");
  return out;
}

// Greedy continuation of a prefilled sequence, as HF generate does it: argmax of `last_logits`, then one decode
// per token, stopping after an eos id or max_tokens tokens.
// Runner: anything with std::vector<float> decode(int32_t) (model_driver.h's sequence_driver).
template <class Runner>
std::vector<int32_t> greedy_continuation(Runner& seq, const float* last_logits, int32_t vocab,
                                                const std::vector<int32_t>& eos, size_t max_tokens = 32) {
  std::vector<int32_t> got;
  int32_t next = int32_t(std::max_element(last_logits, last_logits + vocab) - last_logits);
  while (got.size() < max_tokens) {
    got.push_back(next);
    if (std::find(eos.begin(), eos.end(), next) != eos.end()) break;
    std::vector<float> l = seq.decode(next);
    next = int32_t(std::max_element(l.begin(), l.end()) - l.begin());
  }
  return got;
}

// Logits of several positions ([n_pos, vocab] row-major, a and ref alike): the largest over positions of
// max|a - ref| / max|ref| of that position (the normalized error the parity tests bound).
inline double worst_position_ratio(const std::vector<float>& a, const std::vector<float>& ref, int64_t vocab) {
  double worst = 0;
  for (size_t p = 0; p * size_t(vocab) < ref.size(); ++p) {
    double mr = 0, md = 0;
    for (int64_t j = 0; j < vocab; ++j) {
      const size_t i = p * size_t(vocab) + size_t(j);
      mr = std::max(mr, double(std::fabs(ref[i])));
      md = std::max(md, double(std::fabs(a[i] - ref[i])));
    }
    worst = std::max(worst, md / mr);
  }
  return worst;
}

}  // namespace autoglm::test
