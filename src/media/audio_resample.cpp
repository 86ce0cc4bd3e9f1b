// media/audio_resample.cpp: libsoxr streaming resampler for one float channel (see audio_resample.h).
#include "media/audio_resample.h"

#include <soxr.h>

#include <cmath>
#include <string>

#include "core/error.h"

namespace autoglm {

audio_resampler::audio_resampler(double in_rate, double out_rate) : ratio_(out_rate / in_rate) {
  AG_CHECK(in_rate > 0 && out_rate > 0 && std::isfinite(in_rate) && std::isfinite(out_rate),
           std::to_string(in_rate) + " -> " + std::to_string(out_rate));
  if (in_rate == out_rate) return;
  const soxr_io_spec_t io = soxr_io_spec(SOXR_FLOAT32_I, SOXR_FLOAT32_I);
  const soxr_quality_spec_t quality = soxr_quality_spec(SOXR_HQ, 0);
  // One thread: requests are already decoded in parallel by the server; soxr's own OpenMP pool would oversubscribe.
  const soxr_runtime_spec_t runtime = soxr_runtime_spec(1);
  soxr_error_t err = nullptr;
  soxr_t s = soxr_create(in_rate, out_rate, 1, &err, &io, &quality, &runtime);
  if (err || !s) {
    soxr_delete(s);
    throw error(std::string("audio: cannot create a resampler from ") + std::to_string(in_rate) + " Hz to " +
                std::to_string(out_rate) + " Hz (" + (err ? err : "soxr_create failed") + ")");
  }
  soxr_ = s;
}

audio_resampler::~audio_resampler() { soxr_delete(static_cast<soxr_t>(soxr_)); }

// Feeds n samples (n = 0 with in = nullptr: flush) and appends everything soxr produces. soxr takes all the
// input offered as long as the output buffer has room, so the loop runs until the input is consumed and, for a
// flush, until no more output comes.
void audio_resampler::run(const float* in, size_t n, std::vector<float>& out) {
  auto* s = static_cast<soxr_t>(soxr_);
  const size_t chunk = static_cast<size_t>(std::ceil(static_cast<double>(n) * ratio_)) + 1024;
  size_t consumed = 0;
  for (;;) {
    const size_t old = out.size();
    out.resize(old + chunk);
    size_t idone = 0, odone = 0;
    const soxr_error_t err = soxr_process(s, in ? in + consumed : nullptr, in ? n - consumed : 0, &idone,
                                          out.data() + old, chunk, &odone);
    out.resize(old + odone);
    if (err) throw error(std::string("audio: resampling failed (") + err + ")");
    consumed += idone;
    if (in ? consumed >= n && odone < chunk : odone == 0) break;
  }
}

void audio_resampler::push(const float* in, size_t n, std::vector<float>& out) {
  if (!soxr_) {
    out.insert(out.end(), in, in + n);
    return;
  }
  if (n) run(in, n, out);
}

void audio_resampler::finish(std::vector<float>& out) {
  if (soxr_) run(nullptr, 0, out);
}

std::vector<float> resample_mono(const float* in, size_t n, double in_rate, double out_rate) {
  audio_resampler r(in_rate, out_rate);
  std::vector<float> out;
  out.reserve(static_cast<size_t>(static_cast<double>(n) * out_rate / in_rate) + 16);
  r.push(in, n, out);
  r.finish(out);
  return out;
}

}  // namespace autoglm
