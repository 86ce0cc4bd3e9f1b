// tests/model/model_files_util.h: scratch model directories for the model-file tests: a copy of the tiny
// fixture's JSON files with one value changed, FIFOs in place of files, and a guard that turns a load which
// blocks forever (the old behaviour on a FIFO) into a test failure instead of a hung test binary.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "core/error.h"

namespace autoglm::test {

inline std::string tiny_model_dir() { return std::string(AUTOGLM_SOURCE_DIR) + "/tests/fixtures/tiny_glm4v"; }

inline nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

inline std::string scratch_prefix() { return "autoglm_mf_" + std::to_string(::getpid()) + "_"; }

// Removes this process's scratch directories when the test binary ends (registered once per binary).
class scratch_cleanup : public ::testing::Environment {
 public:
  void TearDown() override {
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(std::filesystem::temp_directory_path(), ec))
      if (e.path().filename().string().rfind(scratch_prefix(), 0) == 0) std::filesystem::remove_all(e.path(), ec);
  }
};
inline ::testing::Environment* const scratch_cleanup_env = ::testing::AddGlobalTestEnvironment(new scratch_cleanup);

// A fresh empty directory named after the running test (the same path on every call within one test).
inline std::string scratch_dir(const std::string& tag = "") {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  auto d = std::filesystem::temp_directory_path() /
           (scratch_prefix() + info->test_suite_name() + "_" + info->name() + tag);
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return d.string();
}

inline void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

// Sets the value at a JSON pointer ("/text_config/vocab_size"); a null `value` removes the key.
inline void set_at(nlohmann::json& j, const std::string& pointer, const nlohmann::json& value) {
  nlohmann::json::json_pointer p(pointer);
  if (value.is_null())
    j[p.parent_pointer()].erase(p.back());
  else
    j[p] = value;
}

inline void make_fifo(const std::string& path) {
  std::filesystem::remove(path);
  ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0) << path;
}

// Runs `load` and returns the autoglm::error message it throws ("" when it returns normally). If it has not
// returned after a generous while it is blocked on `fifo` (a reader waiting for a writer): the guard opens the
// FIFO's write end to let it go on, and the test fails. The time is a hang guard, not a measurement.
inline std::string error_of_guarded(const std::function<void()>& load, const std::string& fifo = "") {
  auto fut = std::async(std::launch::async, [&]() -> std::string {
    try {
      load();
    } catch (const error& e) {
      return e.what();
    }
    return "";
  });
  if (!fifo.empty() && fut.wait_for(std::chrono::seconds(20)) != std::future_status::ready) {
    ADD_FAILURE() << "loading blocked on the FIFO " << fifo;
    int fd = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK);
    if (fd >= 0) ::close(fd);
  }
  return fut.get();
}

}  // namespace autoglm::test
