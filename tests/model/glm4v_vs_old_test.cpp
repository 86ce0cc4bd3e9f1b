// tests/model/glm4v_vs_old_test.cpp: TRANSITIONAL: the model written over ops reproduces the old model_runner
// implementation's prompt logits and greedy decode logits bit for bit (same kernels, same order of arithmetic) on
// every fixture case. The old path runs as a separate program (old_model_tool): model_runner.h and model.h define
// different types under one name (forward_batch), which must not meet in one binary. Delete with the old classes.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <unistd.h>

#include "fixture_io.h"
#include "model/model.h"
#include "model_driver.h"

using namespace autoglm;

namespace {

template <class T>
std::vector<T> read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw std::runtime_error("missing " + path);
  const size_t bytes = size_t(in.tellg());
  std::vector<T> v(bytes / sizeof(T));
  in.seekg(0);
  in.read(reinterpret_cast<char*>(v.data()), std::streamsize(bytes));
  return v;
}

}  // namespace

TEST(glm4v_vs_old, same_logits_as_the_old_implementation) {
  // The old model_runner path writes every case's prompt logits (same chunking) and the logits of each greedy
  // decode step; the new model must reproduce them bit for bit (same kernels, same order of arithmetic).
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("autoglm_old_logits_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string cmd = std::string(AUTOGLM_OLD_MODEL_TOOL) + " dump " + dir.string();
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  exec_context ctx(device{}, 2);
  const std::unique_ptr<model> m = load_model(test::fixture_model_dir(), ctx);
  const auto cases = test::load_cases();
  const int32_t vocab = m->info().vocab_size;
  int n_cases = 0;
  for (const auto& c : cases["cases"]) {
    const std::string name = c["name"];
    const std::vector<int32_t> tokens = c["tokens"].get<std::vector<int32_t>>();
    const std::vector<vision_input> images = test::fixture_images(c);
    test::sequence_driver seq(*m, ctx, int32_t(tokens.size()) + 40);
    const std::vector<float> prefill = seq.prefill(tokens, images, true, images.empty() ? 17 : 13);
    const std::vector<float> old_prefill = read_all<float>((dir / (name + ".prefill.f32")).string());
    ASSERT_EQ(prefill.size(), old_prefill.size()) << name;
    EXPECT_EQ(std::memcmp(prefill.data(), old_prefill.data(), prefill.size() * sizeof(float)), 0)
        << name << ": prompt logits differ from the old implementation";
    // Decode the old greedy tokens and compare each step's logits.
    const std::vector<int32_t> greedy = read_all<int32_t>((dir / (name + ".greedy.i32")).string());
    const std::vector<float> old_decode = read_all<float>((dir / (name + ".decode.f32")).string());
    ASSERT_EQ(old_decode.size() % size_t(vocab), 0u);
    const size_t steps = old_decode.size() / size_t(vocab);
    ASSERT_LE(steps, greedy.size()) << name;
    for (size_t s = 0; s < steps; ++s) {
      const std::vector<float> l = seq.decode(greedy[s]);
      EXPECT_EQ(std::memcmp(l.data(), old_decode.data() + s * size_t(vocab), l.size() * sizeof(float)), 0)
          << name << ": decode step " << s << " logits differ from the old implementation";
    }
    ++n_cases;
  }
  EXPECT_EQ(n_cases, 6);
  std::ifstream wb(dir / "weight_bytes.txt");
  size_t old_bytes = 0;
  wb >> old_bytes;
  EXPECT_EQ(m->weight_bytes_per_token(), old_bytes);
  fs::remove_all(dir);
}
