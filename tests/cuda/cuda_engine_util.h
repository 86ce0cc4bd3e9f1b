// tests/cuda/cuda_engine_util.h: an engine request over a fixture case, for the CUDA tests that drive engines
// (cuda_model_test.cpp, cuda_tensor_parallel_test.cpp).
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <vector>

#include "../model/fixture_io.h"
#include "autoglm/engine.h"

namespace autoglm::cuda_test {

// Greedy (or `sampling`) through an engine: the case's eos ids as the only stop ids, 32 tokens at most, as HF
// generate. Without prompt logits a GPU engine draws the tokens with the SAMPLE op on the device.
inline std::vector<int32_t> engine_greedy(engine& e, const nlohmann::json& c, std::vector<float>* prompt_logits,
                                          const sampling_params* sampling = nullptr) {
  generation_request r;
  r.prompt = c["tokens"].get<std::vector<int32_t>>();
  r.images = test::fixture_images(c);
  if (sampling) {
    r.sampling = *sampling;
  } else {
    r.sampling.temperature = 0.0f;
    r.sampling.max_tokens = 32;
  }
  r.sampling.ignore_eos = true;
  r.sampling.stop_token_ids = c["eos_token_ids"].get<std::vector<int32_t>>();
  r.return_prompt_logits = prompt_logits != nullptr;
  std::mutex mu;
  std::condition_variable cv;
  std::vector<int32_t> tokens;
  bool done = false;
  std::string error;
  const uint64_t id = e.submit(std::move(r), [&](const generation_event& ev) {
    std::lock_guard<std::mutex> lk(mu);
    if (prompt_logits && !ev.prompt_logits.empty()) *prompt_logits = ev.prompt_logits;
    if (ev.has_token) tokens.push_back(ev.token);
    if (ev.finish != finish_reason::NONE) {
      done = true;
      error = ev.error;
      cv.notify_all();
    }
  });
  EXPECT_NE(id, 0u);
  std::unique_lock<std::mutex> lk(mu);
  EXPECT_TRUE(cv.wait_for(lk, std::chrono::seconds(300), [&] { return done; }));
  EXPECT_EQ(error, "");
  return tokens;
}

}  // namespace autoglm::cuda_test
