// tests/media/whisper_mel_parity_test.cpp: the log-mel and the Slaney filter bank against transformers'
// WhisperFeatureExtractor, from the fixtures tests/fixtures/make_mel_fixtures.py writes (run on a machine with
// transformers + numpy; the output is committed under tests/fixtures/whisper_mel/). Skips while they are absent.
//
// Inputs are rebuilt here exactly as the generator built them: the 16 kHz WAV assets decoded by our decoder (the
// generator reads them with Python's wave module; the sample count and sums recorded in the index must match),
// a one-sample impulse, and the phrase tiled to 35 s (truncated to the 30 s window).
// Tolerances (the log-mel spans about [-1.5, 2]). Measured with the committed fixtures (transformers 5.17.0, numpy
// 2.5.2, torch 2.11.0): filters 2.3e-16; log-mel vs the default (torch) path 5.5e-5 at most (the tiled window, 128
// bins; 1.9e-5 / 2.9e-5 for the 80 / 128-bin speech), vs the numpy path 3.4e-5 at most; silence exact, the impulse
// 1.2e-7. Mean |diff| 4e-7 or less everywhere.
//  - filters: 1e-12 relative to the largest weight (the same float64 steps; libm's log/exp against numpy's).
//  - log-mel vs the numpy path (float64 FFT, rounded to complex64): 1e-4. Ours is a float32 FFT; against a
//    float64 DFT (whisper_mel_test.cpp) it is off by at most 1.9e-5 on the short assets and 4.1e-5 on the full
//    tiled window, always in bins just above the window's (max - 8) floor, where float32 rounding of the windowed
//    samples is a large part of a small power.
//  - log-mel vs transformers' default path (torch.stft, float32 throughout): 1.5e-4. Both sides carry that float32
//    error, independently.
// The measured max |diff| of each case is printed.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "audio_util.h"
#include "media/audio.h"
#include "media/whisper_features.h"

namespace autoglm {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr double k_filter_rel_tol = 1e-12;
constexpr double k_torch_tol = 1.5e-4;
constexpr double k_numpy_tol = 1e-4;

fs::path fixture_dir() {
  const char* env = std::getenv("AUTOGLM_SOURCE_DIR");
  return fs::path(env && *env ? env : AUTOGLM_SOURCE_DIR) / "tests" / "fixtures" / "whisper_mel";
}

// A string field that may be absent or null (torch_version is null without torch).
std::string text_or(const json& j, const char* key, const char* fallback) {
  return j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : fallback;
}

template <typename T>
std::vector<T> read_le(const fs::path& p) {
  const std::vector<uint8_t> b = test::read_bytes(p);
  std::vector<T> v(b.size() / sizeof(T));
  std::memcpy(v.data(), b.data(), v.size() * sizeof(T));  // little-endian hosts (x86-64, arm64)
  return v;
}

class whisper_mel_parity : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(fixture_dir() / "index.json"))
      GTEST_SKIP() << "no transformers fixtures at " << fixture_dir()
                   << " (run `python3 tests/fixtures/make_mel_fixtures.py OUT_DIR` where transformers is installed and "
                      "copy OUT_DIR there)";
    std::ifstream f(fixture_dir() / "index.json");
    index_ = json::parse(f);
    std::printf("[mel parity] transformers %s, numpy %s, torch %s, default path: %s\n",
                text_or(index_, "transformers_version", "?").c_str(), text_or(index_, "numpy_version", "?").c_str(),
                text_or(index_, "torch_version", "none").c_str(), text_or(index_, "default_path", "?").c_str());
  }

  // The generator's input for a case, rebuilt and checked against the recorded length and sums.
  std::vector<float> input(const json& c) {
    const json& src = c["input"];
    const std::string kind = src["kind"];
    std::vector<float> pcm;
    if (kind == "wav" || kind == "tiled_wav") {
      const std::vector<uint8_t> b = test::read_asset(src["file"].get<std::string>());
      pcm = decode_audio_16k_mono(b.data(), b.size());
      if (kind == "tiled_wav") {
        const size_t n = src["samples"].get<size_t>();
        std::vector<float> tiled;
        tiled.reserve(n);
        while (tiled.size() < n)
          tiled.insert(tiled.end(), pcm.begin(), pcm.begin() + std::min(pcm.size(), n - tiled.size()));
        pcm = std::move(tiled);
      }
    } else if (kind == "impulse") {
      pcm = {src["value"].get<float>()};
    } else {
      ADD_FAILURE() << "unknown input kind " << kind;
    }
    double sum = 0, sumsq = 0;
    for (float v : pcm) sum += v, sumsq += double(v) * v;
    EXPECT_EQ(pcm.size(), c["n_input_samples"].get<size_t>());
    EXPECT_NEAR(sum, c["input_sum"].get<double>(), 1e-9 * std::max(1.0, std::fabs(sum)));
    EXPECT_NEAR(sumsq, c["input_sumsq"].get<double>(), 1e-9 * std::max(1.0, sumsq));
    return pcm;
  }

  json index_;
};

TEST_F(whisper_mel_parity, filter_banks) {
  for (const auto& [bins, entry] : index_["mel_filters"].items()) {
    const int n_mels = std::stoi(bins);
    const std::vector<double> ref = read_le<double>(fixture_dir() / entry["file"].get<std::string>());
    const std::vector<double> ours = mel_filter_bank_slaney(n_mels, 400, 16000);
    ASSERT_EQ(ref.size(), ours.size());
    // transformers stores [n_bins, n_mels]; ours is [n_mels, n_bins].
    double max_w = 0, max_diff = 0;
    for (int m = 0; m < n_mels; ++m)
      for (int k = 0; k < 201; ++k) {
        max_w = std::max(max_w, ref[size_t(k) * n_mels + m]);
        max_diff = std::max(max_diff, std::fabs(ref[size_t(k) * n_mels + m] - ours[size_t(m) * 201 + k]));
      }
    std::printf("[mel parity] filter bank %3d: max |diff| %.3g (largest weight %.4g)\n", n_mels, max_diff, max_w);
    EXPECT_LE(max_diff, k_filter_rel_tol * max_w);
  }
}

TEST_F(whisper_mel_parity, log_mel_matches_transformers) {
  ASSERT_FALSE(index_["cases"].empty());
  for (const json& c : index_["cases"]) {
    const std::string name = c["name"];
    SCOPED_TRACE(name);
    whisper_feature_config cfg;
    cfg.feature_size = c["feature_size"];
    const std::vector<float> pcm = input(c);
    const std::vector<float> ours = whisper_log_mel(pcm.data(), pcm.size(), cfg);
    const std::vector<int> frames = c["stored_frames"].get<std::vector<int>>();
    const int n_mels = cfg.feature_size, n_frames = cfg.nb_max_frames;
    for (const std::string& path : {std::string("default"), std::string("numpy")}) {
      const std::string key = path == "default" ? "file" : "numpy_file";
      if (!c.contains(key) || c[key].is_null()) continue;
      const std::vector<float> ref = read_le<float>(fixture_dir() / c[key].get<std::string>());
      ASSERT_EQ(ref.size(), size_t(n_mels) * frames.size());
      double max_diff = 0, sum_diff = 0;
      for (int m = 0; m < n_mels; ++m)
        for (size_t i = 0; i < frames.size(); ++i) {
          const double d = std::fabs(ref[m * frames.size() + i] - ours[size_t(m) * n_frames + frames[i]]);
          max_diff = std::max(max_diff, d), sum_diff += d;
        }
      // Frames not stored: all equal to the recorded value (the floor after the signal), when one is recorded.
      const std::string rest_key = path == "default" ? "rest_value" : "numpy_rest_value";
      if (c.contains(rest_key) && !c[rest_key].is_null()) {
        const float rest = c[rest_key];
        std::vector<bool> stored(n_frames, false);
        for (int t : frames) stored[t] = true;
        for (int t = 0; t < n_frames; ++t)
          if (!stored[t])
            for (int m = 0; m < n_mels; ++m)
              max_diff = std::max(max_diff, double(std::fabs(rest - ours[size_t(m) * n_frames + t])));
      }
      const bool is_numpy = path == "numpy" || text_or(index_, "default_path", "") == "numpy";
      std::printf("[mel parity] %-28s %-7s max |diff| %.3g, mean |diff| %.3g\n", name.c_str(), path.c_str(), max_diff,
                  sum_diff / (double(n_mels) * frames.size()));
      EXPECT_LE(max_diff, is_numpy ? k_numpy_tol : k_torch_tol) << path;
    }
  }
}

}  // namespace
}  // namespace autoglm
