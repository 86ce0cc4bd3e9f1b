// model/model_loader.h: opens a model directory and returns the model family that its config.json names.
// Registration is one line in the table in model_loader.cpp.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "model/model_runner.h"

namespace autoglm {

// More compute threads than this is a typo, not a machine (a thread each would exhaust memory first).
constexpr int32_t k_max_threads = 1024;

// Throws autoglm::error for a missing/invalid directory or an unsupported architecture.
// n_threads > 0 resizes the CPU thread pool first; it must be in [0, k_max_threads].
std::unique_ptr<model_runner> load_model_runner(const std::string& model_dir, int32_t n_threads = 0);
std::vector<std::string> supported_architectures();

}  // namespace autoglm
