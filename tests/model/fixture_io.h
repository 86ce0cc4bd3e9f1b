// tests/model/fixture_io.h: reading the Hugging Face reference outputs in tests/fixtures/ref/.
#pragma once

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "model/sequence_runner.h"

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

// Greedy continuation of a prefilled sequence, as HF generate does it: argmax of `last_logits`, then one decode
// per token, stopping after an eos id or max_tokens tokens.
inline std::vector<int32_t> greedy_continuation(sequence_runner& seq, const float* last_logits, int32_t vocab,
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

}  // namespace autoglm::test
