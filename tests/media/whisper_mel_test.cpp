// tests/media/whisper_mel_test.cpp: Whisper's log-mel (src/media/whisper_features.cpp) without transformers:
// the Slaney filter bank's properties, the spectrogram against a double-precision DFT written from the definition,
// what a sine, silence and an impulse must give, window edge cases (empty, 1 sample, padding, truncation), other
// configs, and preprocessor_config.json parsing. whisper_mel_parity_test.cpp compares with transformers itself.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include "audio_util.h"
#include "core/error.h"
#include "media/audio.h"
#include "media/whisper_features.h"

namespace autoglm {
namespace {

std::vector<float> asset_pcm(const std::string& name) {
  const std::vector<uint8_t> b = test::read_asset(name);
  return decode_audio_16k_mono(b.data(), b.size());
}

whisper_feature_config config(int n_mels, int chunk_length = 30) {
  whisper_feature_config c;
  c.feature_size = n_mels;
  c.chunk_length = chunk_length;
  c.n_samples = chunk_length * c.sampling_rate;
  c.nb_max_frames = c.n_samples / c.hop_length;
  return c;
}

float at(const std::vector<float>& mel, const whisper_feature_config& c, int m, int t) {
  return mel[size_t(m) * c.nb_max_frames + t];
}

// The power spectrogram from its definition, in double: reflect padding by index arithmetic, a periodic Hann
// window, the DFT as direct sums. [nb_max_frames][n_fft/2 + 1]; all-zero frames are left at 0.
std::vector<std::vector<double>> reference_power(const std::vector<float>& pcm, const whisper_feature_config& c) {
  const int N = c.n_fft, bins = N / 2 + 1, half = N / 2;
  const long L = c.n_samples;
  auto sample = [&](long i) -> double {  // the padded/truncated window, reflected at both ends
    if (i < 0) i = -i;
    if (i >= L) i = 2 * (L - 1) - i;
    return i < long(pcm.size()) ? pcm[i] : 0.0;
  };
  const double pi = 3.14159265358979323846;
  std::vector<double> cos_t(N), sin_t(N), hann(N), x(N);
  for (int j = 0; j < N; ++j) {
    cos_t[j] = std::cos(2 * pi * j / N), sin_t[j] = std::sin(2 * pi * j / N);
    hann[j] = 0.5 - 0.5 * std::cos(2 * pi * j / N);
  }
  std::vector<std::vector<double>> power(c.nb_max_frames, std::vector<double>(bins, 0.0));
  for (int t = 0; t < c.nb_max_frames; ++t) {
    bool zero = true;
    for (int j = 0; j < N; ++j) {
      x[j] = sample(long(t) * c.hop_length + j - half) * hann[j];
      zero = zero && x[j] == 0.0;
    }
    if (zero) continue;
    for (int k = 0; k < bins; ++k) {
      double re = 0, im = 0;
      for (int j = 0, idx = 0; j < N; ++j, idx = idx + k >= N ? idx + k - N : idx + k)  // idx = j k mod N
        re += x[j] * cos_t[idx], im -= x[j] * sin_t[idx];
      power[t][k] = re * re + im * im;
    }
  }
  return power;
}

// Then the filter bank, log10 with the 1e-10 clamp, the (max - 8) floor and (x + 4) / 4.
std::vector<double> reference_log_mel(const std::vector<std::vector<double>>& power, const whisper_feature_config& c) {
  const int bins = c.n_fft / 2 + 1;
  const std::vector<double> bank = mel_filter_bank_slaney(c.feature_size, c.n_fft, c.sampling_rate);
  std::vector<double> logmel(size_t(c.feature_size) * c.nb_max_frames);
  double max_log = -1e300;
  for (int t = 0; t < c.nb_max_frames; ++t)
    for (int m = 0; m < c.feature_size; ++m) {
      double e = 0;
      for (int k = 0; k < bins; ++k) e += bank[size_t(m) * bins + k] * power[t][k];
      const double v = std::log10(std::max(e, 1e-10));
      logmel[size_t(m) * c.nb_max_frames + t] = v;
      max_log = std::max(max_log, v);
    }
  for (double& v : logmel) v = (std::max(v, max_log - 8.0) + 4.0) / 4.0;
  return logmel;
}

// ------------------------------------------------------------------------------------------- filter bank

TEST(mel_scale, slaney_scale) {
  EXPECT_DOUBLE_EQ(hertz_to_mel_slaney(0.0), 0.0);
  EXPECT_DOUBLE_EQ(hertz_to_mel_slaney(200.0), 3.0);
  EXPECT_DOUBLE_EQ(hertz_to_mel_slaney(1000.0), 15.0);
  EXPECT_NEAR(hertz_to_mel_slaney(8000.0), 15.0 + 27.0 * std::log(8.0) / std::log(6.4), 1e-12);
  EXPECT_NEAR(hertz_to_mel_slaney(6400.0), 42.0, 1e-12);  // 27 mels per factor 6.4 above 1 kHz
  for (double hz : {0.0, 50.0, 440.0, 999.0, 1000.0, 1001.0, 3000.0, 7999.0, 8000.0})
    EXPECT_NEAR(mel_to_hertz_slaney(hertz_to_mel_slaney(hz)), hz, 1e-9 * std::max(1.0, hz)) << hz;
}

TEST(mel_filter_bank, slaney_properties) {
  for (int n_mels : {80, 128}) {
    SCOPED_TRACE(n_mels);
    const int bins = 201;
    const std::vector<double> bank = mel_filter_bank_slaney(n_mels, 400, 16000);
    ASSERT_EQ(bank.size(), size_t(n_mels) * bins);
    const double mel_max = hertz_to_mel_slaney(8000.0);
    for (int m = 0; m < n_mels; ++m) {
      SCOPED_TRACE(m);
      // Edges and centre of filter m: mel points m, m+1, m+2 of n_mels + 2 evenly spaced from 0 to mel(8 kHz).
      const double lo = mel_to_hertz_slaney(mel_max * m / (n_mels + 1));
      const double mid = mel_to_hertz_slaney(mel_max * (m + 1) / (n_mels + 1));
      const double hi = mel_to_hertz_slaney(mel_max * (m + 2) / (n_mels + 1));
      double peak = 0, area = 0;
      int peak_bin = -1;
      for (int k = 0; k < bins; ++k) {
        const double w = bank[size_t(m) * bins + k], f = 40.0 * k;
        ASSERT_GE(w, 0.0);
        if (f <= lo + 1e-9 || f >= hi - 1e-9) {
          EXPECT_EQ(w, 0.0) << "outside the triangle at bin " << k;
        } else {
          EXPECT_GT(w, 0.0) << "inside the triangle at bin " << k;
        }
        // Rising below the centre, falling above it.
        if (k > 0 && f <= mid) {
          EXPECT_GE(w, bank[size_t(m) * bins + k - 1]);
        }
        if (k > 0 && f - 40.0 >= mid) {
          EXPECT_LE(w, bank[size_t(m) * bins + k - 1]);
        }
        if (w > peak) peak = w, peak_bin = k;
        area += w * 40.0;
      }
      ASSERT_GE(peak_bin, 0) << "an all-zero filter";
      EXPECT_LE(std::fabs(40.0 * peak_bin - mid), 40.0);
      EXPECT_LE(peak, 2.0 / (hi - lo) + 1e-15);  // the triangle's height: unit area in Hz (Slaney norm)
      // Sampled every 40 Hz, the area is 1 up to the sampling of the triangle: close for wide filters.
      // Narrow low filters (128 bins: 47 Hz wide, on a 40 Hz grid) catch one or two samples of their triangle.
      if (hi - lo > 400.0) {
        EXPECT_NEAR(area, 1.0, 0.02);
      } else {
        EXPECT_GT(area, 0.3);
        EXPECT_LT(area, 2.0);
      }
    }
  }
  EXPECT_THROW(mel_filter_bank_slaney(0, 400, 16000), error);
  EXPECT_THROW(mel_filter_bank_slaney(80, 400, 16000, 100.0, 50.0), error);
}

// ---------------------------------------------------------------------------------------------- log-mel

TEST(whisper_log_mel, matches_a_double_precision_dft) {
  // The float FFT (kissfft) against the double-precision definition above. Measured max |diff| over every bin,
  // 80 / 128 bins: speech 1.7e-5 / 1.9e-5, sine 1.1e-5 / 1.5e-5, clipped noise 3e-7 / 1.1e-6 (and, measured once,
  // not run here for its cost under the sanitizers: the phrase tiled over the whole window 2.2e-5 / 4.1e-5; mean
  // |diff| 2e-7). That is the floor of single precision, not of kissfft: rounding the windowed samples to float
  // already moves each bin by ~6e-8 x the frame's norm, a large part of the bins just above the (max - 8) floor,
  // where every maximum above sits. Bound: 5e-5.
  for (const char* file : {"speech_16k.wav", "noise_clipped_16k.wav", "sine_440hz_16k.wav"}) {
    const std::vector<float> pcm = asset_pcm(file);
    const auto power = reference_power(pcm, config(80));  // the same spectrogram for both bin counts
    for (int n_mels : {80, 128}) {
      SCOPED_TRACE(std::string(file) + " " + std::to_string(n_mels));
      const whisper_feature_config c = config(n_mels);
      const std::vector<float> got = whisper_log_mel(pcm.data(), pcm.size(), c);
      const std::vector<double> want = reference_log_mel(power, c);
      ASSERT_EQ(got.size(), want.size());
      double max_diff = 0;
      for (size_t i = 0; i < got.size(); ++i) max_diff = std::max(max_diff, std::fabs(got[i] - want[i]));
      std::printf("[mel] %-22s %3d bins: max |diff| vs double-precision DFT %.3g\n", file, n_mels, max_diff);
      EXPECT_LT(max_diff, 5e-5);
    }
  }
}

TEST(whisper_log_mel, silence_is_the_floor_everywhere) {
  // Every bin is log10(1e-10) = -10, which is also the maximum: (-10 + 4) / 4.
  const std::vector<float> silence = asset_pcm("silence_16k.wav");
  for (int n_mels : {80, 128}) {
    const whisper_feature_config c = config(n_mels);
    for (const std::vector<float>& pcm : {silence, std::vector<float>{}}) {
      const std::vector<float> mel = whisper_log_mel(pcm.data(), pcm.size(), c);
      ASSERT_EQ(mel.size(), size_t(n_mels) * 3000);
      for (float v : mel) ASSERT_EQ(v, -1.5f);
    }
  }
  EXPECT_EQ(whisper_log_mel(nullptr, 0, config(80)), std::vector<float>(80 * 3000, -1.5f));
}

TEST(whisper_log_mel, sine_lands_in_its_mel_bin) {
  // 440 Hz is FFT bin 11 exactly (40 Hz bins): in steady frames the loudest mel bin is the filter that weighs bin
  // 11 most, and every frame after the tone (it lasts 1 s = 100 frames) sits at the floor.
  const std::vector<float> pcm = asset_pcm("sine_440hz_16k.wav");
  for (int n_mels : {80, 128}) {
    SCOPED_TRACE(n_mels);
    const whisper_feature_config c = config(n_mels);
    const std::vector<double> bank = mel_filter_bank_slaney(n_mels, 400, 16000);
    int expected = 0;
    for (int m = 1; m < n_mels; ++m)
      if (bank[size_t(m) * 201 + 11] > bank[size_t(expected) * 201 + 11]) expected = m;
    const std::vector<float> mel = whisper_log_mel(pcm.data(), pcm.size(), c);
    for (int t = 5; t < 95; ++t) {
      int best = 0;
      for (int m = 1; m < n_mels; ++m)
        if (at(mel, c, m, t) > at(mel, c, best, t)) best = m;
      ASSERT_EQ(best, expected) << "frame " << t;
    }
    // The tone is loud, so the floor (window maximum - 8 in log10, i.e. 2 below the top output) is above
    // log10(1e-10): every frame after the tone (1 s = 100 frames, + 2 for the window's reach) sits at it.
    const float top = *std::max_element(mel.begin(), mel.end());
    const float floor_v = *std::min_element(mel.begin(), mel.end());
    EXPECT_NEAR(floor_v, top - 2.0f, 1e-6f);
    EXPECT_GT(floor_v, -1.5f);
    for (int t = 103; t < 3000; ++t)
      for (int m = 0; m < n_mels; ++m) ASSERT_EQ(at(mel, c, m, t), floor_v) << m << "," << t;
  }
}

TEST(whisper_log_mel, one_sample_and_window_edges) {
  // One sample at index 0 reaches frames 0 and 1 only (frame t covers samples 160 t - 200 .. 160 t + 199, and
  // the reflection at the start mirrors sample 1.., not sample 0).
  const whisper_feature_config c = config(80);
  const float one = 0.5f;
  const std::vector<float> mel = whisper_log_mel(&one, 1, c);
  // This quiet window's maximum is below -2 in log10, so the floor is the clamp's log10(1e-10) = -10: -1.5.
  const float top = *std::max_element(mel.begin(), mel.end());
  EXPECT_LT(top - 2.0f, -1.5f);
  for (int m = 0; m < 80; ++m) {
    EXPECT_GT(at(mel, c, m, 0), -1.5f);
    EXPECT_GT(at(mel, c, m, 1), -1.5f);
    for (int t = 2; t < 3000; ++t) ASSERT_EQ(at(mel, c, m, t), -1.5f);
  }
  // Padding with zeros changes nothing; a longer input is truncated to 30 s.
  std::vector<float> pcm = asset_pcm("speech_16k.wav");
  const std::vector<float> base = whisper_log_mel(pcm.data(), pcm.size(), c);
  std::vector<float> padded = pcm;
  padded.resize(20 * 16000, 0.0f);
  EXPECT_EQ(whisper_log_mel(padded.data(), padded.size(), c), base);
  std::vector<float> tiled;
  while (tiled.size() < 31 * 16000) tiled.insert(tiled.end(), pcm.begin(), pcm.end());
  const std::vector<float> first30(tiled.begin(), tiled.begin() + 30 * 16000);
  const std::vector<float> long_mel = whisper_log_mel(tiled.data(), tiled.size(), c);
  EXPECT_EQ(long_mel, whisper_log_mel(first30.data(), first30.size(), c));
  // ... and the tiled phrase fills the window: its last frame is not at the floor.
  const float long_floor = *std::min_element(long_mel.begin(), long_mel.end());
  float last_max = long_floor;
  for (int m = 0; m < 80; ++m) last_max = std::max(last_max, at(long_mel, c, m, 2999));
  EXPECT_GT(last_max, long_floor + 0.5f);
}

TEST(whisper_log_mel, padding_value_and_other_configs) {
  const std::vector<float> pcm = asset_pcm("speech_16k.wav");
  // A 10 s window: 1000 frames; the same bins as the 30 s window's first frames up to the floor, which depends
  // on the whole window's maximum (the same here: all the speech is inside both).
  const whisper_feature_config c10 = config(80, 10), c30 = config(80);
  const std::vector<float> m10 = whisper_log_mel(pcm.data(), pcm.size(), c10);
  const std::vector<float> m30 = whisper_log_mel(pcm.data(), pcm.size(), c30);
  ASSERT_EQ(m10.size(), 80u * 1000);
  for (int m = 0; m < 80; ++m)
    for (int t = 0; t < 990; ++t) ASSERT_EQ(at(m10, c10, m, t), at(m30, c30, m, t)) << m << "," << t;
  // n_fft 512 / hop 128 / 8 s (a power-of-two FFT, other hop) against the definition.
  whisper_feature_config c = config(64, 8);
  c.n_fft = 512, c.hop_length = 128, c.nb_max_frames = c.n_samples / 128;
  const std::vector<float> got = whisper_log_mel(pcm.data(), pcm.size(), c);
  const std::vector<double> want = reference_log_mel(reference_power(pcm, c), c);
  ASSERT_EQ(got.size(), size_t(64) * 1000);
  double max_diff = 0;
  for (size_t i = 0; i < got.size(); ++i) max_diff = std::max(max_diff, std::fabs(got[i] - want[i]));
  EXPECT_LT(max_diff, 5e-5);
  // A non-zero padding value pads with that value (transformers' padding_value), not zeros.
  whisper_feature_config cp = config(80, 10);
  cp.padding_value = 0.25f;
  std::vector<float> explicit_pad = pcm;
  explicit_pad.resize(10 * 16000, 0.25f);
  EXPECT_EQ(whisper_log_mel(pcm.data(), pcm.size(), cp), whisper_log_mel(explicit_pad.data(), explicit_pad.size(), cp));
  // An inconsistent hand-made config is refused.
  whisper_feature_config bad = config(80);
  bad.nb_max_frames = 2999;
  EXPECT_THROW(whisper_log_mel(pcm.data(), pcm.size(), bad), error);
  bad = config(80);
  bad.n_fft = 401;
  EXPECT_THROW(whisper_log_mel(pcm.data(), pcm.size(), bad), error);
}

TEST(whisper_log_mel, threads_agree_and_timing) {
  // A full 30 s window of signal (clipped noise, tiled), computed on four threads at once with both bin counts.
  const std::vector<float> noise = asset_pcm("noise_clipped_16k.wav");
  std::vector<float> pcm;
  while (pcm.size() < 480000) pcm.insert(pcm.end(), noise.begin(), noise.end());
  const whisper_feature_config c80 = config(80), c128 = config(128);
  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<float> ref80 = whisper_log_mel(pcm.data(), pcm.size(), c80);
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  std::printf("[mel] one 30 s window, 80 bins, every frame non-silent: %.1f ms on one core\n", ms);
  const std::vector<float> ref128 = whisper_log_mel(pcm.data(), pcm.size(), c128);
  std::vector<std::vector<float>> results(4);
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i)
    threads.emplace_back([&, i] { results[i] = whisper_log_mel(pcm.data(), pcm.size(), i % 2 ? c128 : c80); });
  for (auto& t : threads) t.join();
  for (int i = 0; i < 4; ++i) EXPECT_EQ(results[i], i % 2 ? ref128 : ref80) << i;
}

// ------------------------------------------------------------------------------------------------- config

TEST(whisper_feature_config, parse_and_load) {
  const whisper_feature_config d = whisper_feature_config::parse("{}", "test.json");
  EXPECT_EQ(d.feature_size, 80);
  EXPECT_EQ(d.n_samples, 480000);
  EXPECT_EQ(d.nb_max_frames, 3000);
  // large-v3's preprocessor_config.json, as published.
  const whisper_feature_config v3 = whisper_feature_config::parse(
      R"({"chunk_length": 30, "feature_extractor_type": "WhisperFeatureExtractor", "feature_size": 128,
          "hop_length": 160, "n_fft": 400, "n_samples": 480000, "nb_max_frames": 3000, "padding_side": "right",
          "padding_value": 0.0, "processor_class": "WhisperProcessor", "return_attention_mask": false,
          "sampling_rate": 16000})",
      "large-v3");
  EXPECT_EQ(v3.feature_size, 128);
  EXPECT_EQ(v3.nb_max_frames, 3000);
  // transformers recomputes n_samples and nb_max_frames from chunk_length: the JSON's values do not count.
  const whisper_feature_config c10 =
      whisper_feature_config::parse(R"({"chunk_length": 10, "n_samples": 480000, "nb_max_frames": 3000})", "x");
  EXPECT_EQ(c10.n_samples, 160000);
  EXPECT_EQ(c10.nb_max_frames, 1000);

  auto message = [](const std::string& text) {
    try {
      whisper_feature_config::parse(text, "pre.json");
    } catch (const error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message(R"({"feature_size": 0})").find("pre.json: feature_size"), std::string::npos);
  EXPECT_NE(message(R"({"feature_size": "80"})").find("feature_size"), std::string::npos);
  EXPECT_NE(message(R"({"n_fft": 401})").find("n_fft"), std::string::npos);
  EXPECT_NE(message(R"({"dither": 0.1})").find("dither"), std::string::npos);
  EXPECT_NE(message(R"({"feature_extractor_type": "SeamlessM4TFeatureExtractor"})").find("feature_extractor_type"),
            std::string::npos);
  EXPECT_NE(message("[1, 2]").find("not a JSON object"), std::string::npos);
  EXPECT_NE(message("{").find("pre.json"), std::string::npos);
  EXPECT_NE(message(R"({"chunk_length": 3600, "sampling_rate": 384000})").find("chunk_length"), std::string::npos);

  const std::filesystem::path dir = std::filesystem::temp_directory_path() / "autoglm_whisper_cfg_test";
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "preprocessor_config.json") << R"({"feature_size": 128})";
  EXPECT_EQ(whisper_feature_config::load((dir / "preprocessor_config.json").string()).feature_size, 128);
  EXPECT_THROW(whisper_feature_config::load((dir / "missing.json").string()), error);
  EXPECT_THROW(whisper_feature_config::load(dir.string()), error);  // a directory, not a file
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace autoglm
