// media/audio_resample.h: one channel of float samples from any rate to another with libsoxr, streamed in
// blocks so a long file is never held at its source rate. Quality SOXR_HQ (what librosa.load uses by default,
// "soxr_hq"): linear phase, the output aligned with the input (no filter delay), passband gain 1.
#pragma once

#include <cstddef>
#include <vector>

namespace autoglm {

class audio_resampler {
 public:
  // Rates in Hz, both > 0. Equal rates copy samples through unchanged.
  audio_resampler(double in_rate, double out_rate);
  ~audio_resampler();
  audio_resampler(const audio_resampler&) = delete;
  audio_resampler& operator=(const audio_resampler&) = delete;

  // Appends the output available so far for n more input samples to `out`.
  void push(const float* in, size_t n, std::vector<float>& out);
  // Appends the rest (the filter's tail). Call once, after the last push.
  void finish(std::vector<float>& out);

 private:
  void run(const float* in, size_t n, std::vector<float>& out);
  void* soxr_ = nullptr;  // soxr_t; null for equal rates
  double ratio_;
};

// The whole signal at once.
std::vector<float> resample_mono(const float* in, size_t n, double in_rate, double out_rate);

}  // namespace autoglm
