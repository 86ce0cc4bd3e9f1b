// media/whisper_features.cpp: WhisperFeatureExtractor's log-mel spectrogram (see whisper_features.h).
// Compiled with -ffp-contract=off: the mel filters reproduce numpy's float64 arithmetic step by step (linspace,
// the Slaney scale, the triangle slopes), which a fused multiply-add would change in the last bits.
#include "media/whisper_features.h"

#include <kiss_fftr.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <mutex>

#include "core/error.h"
#include "core/file_io.h"
#include "formats/json_file.h"
#include "formats/json_limits.h"

namespace autoglm {

namespace {

constexpr uint64_t k_max_preprocessor_config_bytes = 1u << 20;
constexpr double k_min_log_hertz = 1000.0;  // the Slaney scale turns logarithmic here
constexpr double k_min_log_mel = 15.0;      // = hertz_to_mel_slaney(1000)

// numpy.linspace(start, stop, num) (endpoint=True): i * step + start, the last element set to stop exactly.
std::vector<double> linspace(double start, double stop, int num) {
  std::vector<double> y(num);
  const int div = num - 1;
  const double delta = stop - start;
  const double step = div > 0 ? delta / div : 0.0;
  for (int i = 0; i < num; ++i) y[i] = (step == 0.0 && div > 0 ? i / double(div) * delta : i * step) + start;
  if (num > 1) y[num - 1] = stop;
  return y;
}

// What one config needs, made once: the window and each filter's non-zero span.
struct mel_plan {
  whisper_feature_config cfg;
  std::vector<float> window;  // periodic Hann, n_fft
  struct filter {
    int first_bin = 0;
    std::vector<double> weights;
  };
  std::vector<filter> filters;  // feature_size
};

bool same_shape(const whisper_feature_config& a, const whisper_feature_config& b) {
  return a.feature_size == b.feature_size && a.sampling_rate == b.sampling_rate && a.hop_length == b.hop_length &&
         a.n_fft == b.n_fft && a.n_samples == b.n_samples && a.nb_max_frames == b.nb_max_frames;
}

std::shared_ptr<const mel_plan> make_plan(const whisper_feature_config& cfg) {
  auto plan = std::make_shared<mel_plan>();
  plan->cfg = cfg;
  plan->window.resize(cfg.n_fft);
  // Periodic Hann (torch.hann_window(n_fft), numpy's np.hanning(n_fft + 1)[:-1]), in double, rounded once.
  const double pi = 3.14159265358979323846;
  for (int j = 0; j < cfg.n_fft; ++j)
    plan->window[j] = static_cast<float>(0.5 - 0.5 * std::cos(2.0 * pi * j / cfg.n_fft));
  const int n_bins = cfg.n_fft / 2 + 1;
  const std::vector<double> bank = mel_filter_bank_slaney(cfg.feature_size, cfg.n_fft, cfg.sampling_rate);
  plan->filters.resize(cfg.feature_size);
  for (int m = 0; m < cfg.feature_size; ++m) {
    const double* row = bank.data() + size_t(m) * n_bins;
    int lo = 0, hi = n_bins;
    while (lo < hi && row[lo] == 0.0) ++lo;
    while (hi > lo && row[hi - 1] == 0.0) --hi;
    plan->filters[m].first_bin = lo;
    plan->filters[m].weights.assign(row + lo, row + hi);
  }
  return plan;
}

// A handful of configs per process at most (80- and 128-bin models); kept for the process's life.
std::shared_ptr<const mel_plan> plan_for(const whisper_feature_config& cfg) {
  static std::mutex mu;
  static std::vector<std::shared_ptr<const mel_plan>> plans;
  std::lock_guard<std::mutex> lock(mu);
  for (const auto& p : plans)
    if (same_shape(p->cfg, cfg)) return p;
  cfg.validate();
  auto p = make_plan(cfg);
  if (plans.size() >= 8) plans.erase(plans.begin());
  plans.push_back(p);
  return p;
}

// kissfft's real-FFT state holds scratch space as well as twiddles, so it cannot be shared between threads:
// one per thread, remade only when the size changes.
kiss_fftr_cfg fft_for_this_thread(int n_fft) {
  struct state {
    int n = 0;
    kiss_fftr_cfg cfg = nullptr;
    ~state() { kiss_fftr_free(cfg); }
  };
  thread_local state s;
  if (s.n != n_fft) {
    kiss_fftr_free(s.cfg);
    s.cfg = kiss_fftr_alloc(n_fft, 0, nullptr, nullptr);
    s.n = s.cfg ? n_fft : 0;
    if (!s.cfg) throw error("whisper log-mel: cannot allocate an FFT of size " + std::to_string(n_fft));
  }
  return s.cfg;
}

}  // namespace

// ------------------------------------------------------------------------------------------------ config

void whisper_feature_config::validate() const {
  auto bad = [](const std::string& what) { throw error("whisper feature config: " + what); };
  if (feature_size < 1 || feature_size > 1024) bad("feature_size must be in 1..1024");
  if (sampling_rate < 1000 || sampling_rate > 384000) bad("sampling_rate must be in 1000..384000");
  if (n_fft < 2 || n_fft > 65536 || n_fft % 2) bad("n_fft must be even and in 2..65536");
  if (hop_length < 1 || hop_length > 65536) bad("hop_length must be in 1..65536");
  if (chunk_length < 1 || int64_t(chunk_length) * sampling_rate > (int64_t(1) << 26))
    bad("chunk_length * sampling_rate must be in 1..67108864 samples");
  if (n_samples != chunk_length * sampling_rate) bad("n_samples must be chunk_length * sampling_rate");
  if (nb_max_frames != n_samples / hop_length) bad("nb_max_frames must be n_samples / hop_length");
  // torch.stft's reflect padding needs more samples than it pads; a window with no frame is useless.
  if (n_samples <= n_fft / 2 || nb_max_frames < 1) bad("n_samples must exceed n_fft / 2 and hop_length");
  if (int64_t(nb_max_frames) * feature_size > (int64_t(1) << 26)) bad("feature_size * nb_max_frames is too large");
  if (!std::isfinite(padding_value)) bad("padding_value must be finite");
}

whisper_feature_config whisper_feature_config::parse(const std::string& json_text, const std::string& source) {
  nlohmann::json j;
  try {
    j = parse_json(json_text);
  } catch (const error& e) {
    throw error(source + ": " + e.what());
  }
  if (!j.is_object()) throw error(source + ": not a JSON object");
  const json_fields f(j, source);
  const std::string type = f.string_or("feature_extractor_type", "WhisperFeatureExtractor");
  if (type != "WhisperFeatureExtractor")
    f.fail("feature_extractor_type", "is '" + type + "'; only WhisperFeatureExtractor's log-mel is implemented");
  whisper_feature_config c;
  c.feature_size = static_cast<int>(f.integer_or("feature_size", 80, 1, 1024));
  c.sampling_rate = static_cast<int>(f.integer_or("sampling_rate", 16000, 1000, 384000));
  c.hop_length = static_cast<int>(f.integer_or("hop_length", 160, 1, 65536));
  c.n_fft = static_cast<int>(f.integer_or("n_fft", 400, 2, 65536));
  c.chunk_length = static_cast<int>(f.integer_or("chunk_length", 30, 1, 3600));
  c.padding_value = static_cast<float>(f.number_or("padding_value", 0.0, -1e6, 1e6));
  if (f.number_or("dither", 0.0, -1e6, 1e6) != 0.0)
    f.fail("dither", "must be 0 (dithering adds random noise; its output cannot be reproduced)");
  if (c.n_fft % 2) f.fail("n_fft", "must be even");
  if (int64_t(c.chunk_length) * c.sampling_rate > (int64_t(1) << 26))
    f.fail("chunk_length", "times sampling_rate must be at most 67108864 samples");
  c.n_samples = c.chunk_length * c.sampling_rate;
  c.nb_max_frames = c.n_samples / c.hop_length;
  try {
    c.validate();
  } catch (const error& e) {
    throw error(source + ": " + e.what());
  }
  return c;
}

whisper_feature_config whisper_feature_config::load(const std::string& path) {
  return parse(read_regular_file(path, k_max_preprocessor_config_bytes), path);
}

// ---------------------------------------------------------------------------------------------- mel scale

double hertz_to_mel_slaney(double hz) {
  // Same operations as transformers.audio_utils.hertz_to_mel(mel_scale="slaney").
  if (hz >= k_min_log_hertz) return k_min_log_mel + std::log(hz / k_min_log_hertz) * (27.0 / std::log(6.4));
  return 3.0 * hz / 200.0;
}

double mel_to_hertz_slaney(double mel) {
  if (mel >= k_min_log_mel) return k_min_log_hertz * std::exp(std::log(6.4) / 27.0 * (mel - k_min_log_mel));
  return 200.0 * mel / 3.0;
}

std::vector<double> mel_filter_bank_slaney(int n_mels, int n_fft, int sampling_rate, double min_hz, double max_hz) {
  if (n_mels < 1 || n_fft < 2 || sampling_rate < 1 || !(min_hz >= 0.0) || !(max_hz > min_hz) || !std::isfinite(max_hz))
    throw error("mel_filter_bank_slaney: invalid arguments (n_mels " + std::to_string(n_mels) + ", n_fft " +
                std::to_string(n_fft) + ", sampling_rate " + std::to_string(sampling_rate) + ")");
  const int n_bins = n_fft / 2 + 1;
  const std::vector<double> fft_freqs = linspace(0.0, double(sampling_rate / 2), n_bins);  // sampling_rate // 2
  const std::vector<double> mel_points = linspace(hertz_to_mel_slaney(min_hz), hertz_to_mel_slaney(max_hz), n_mels + 2);
  std::vector<double> f(n_mels + 2);  // filter edges and centres in Hz
  for (int i = 0; i < n_mels + 2; ++i) f[i] = mel_to_hertz_slaney(mel_points[i]);

  std::vector<double> bank(size_t(n_mels) * n_bins);
  for (int m = 0; m < n_mels; ++m) {
    const double rise = f[m + 1] - f[m], fall = f[m + 2] - f[m + 1];
    const double enorm = 2.0 / (f[m + 2] - f[m]);  // Slaney: each triangle has unit area in Hz
    for (int k = 0; k < n_bins; ++k) {
      const double down = -(f[m] - fft_freqs[k]) / rise;
      const double up = (f[m + 2] - fft_freqs[k]) / fall;
      bank[size_t(m) * n_bins + k] = std::max(0.0, std::min(down, up)) * enorm;
    }
  }
  return bank;
}

// ------------------------------------------------------------------------------------------------ log-mel

std::vector<float> whisper_log_mel(const float* pcm, size_t n, const whisper_feature_config& cfg) {
  const std::shared_ptr<const mel_plan> plan = plan_for(cfg);
  const int n_fft = cfg.n_fft, hop = cfg.hop_length, n_frames = cfg.nb_max_frames, n_mels = cfg.feature_size;
  const int n_bins = n_fft / 2 + 1;
  const size_t len = size_t(cfg.n_samples), pad = size_t(n_fft / 2);
  if (n > 0 && !pcm) throw error("whisper_log_mel: null samples");

  // The window's samples, padded or truncated to n_samples, with torch.stft's centring: n_fft/2 samples
  // reflected at each end (x[pad - j] on the left, excluding the edge sample itself, likewise on the right).
  std::vector<float> x(len + 2 * pad);
  const size_t n_used = std::min(n, len);
  if (n_used) std::copy(pcm, pcm + n_used, x.begin() + pad);
  std::fill(x.begin() + pad + n_used, x.begin() + pad + len, cfg.padding_value);
  for (size_t j = 1; j <= pad; ++j) {
    x[pad - j] = x[pad + j];
    x[pad + len - 1 + j] = x[pad + len - 1 - j];
  }

  kiss_fftr_cfg fft = fft_for_this_thread(n_fft);
  std::vector<float> frame(n_fft);
  std::vector<kiss_fft_cpx> spectrum(n_bins);
  std::vector<double> power(n_bins);
  std::vector<float> out(size_t(n_mels) * n_frames);
  float max_log = -std::numeric_limits<float>::infinity();
  // log10(max(mel, 1e-10)) of every bin; an all-zero frame (silence, zero padding) skips the FFT.
  const float silent_log = static_cast<float>(std::log10(1e-10));
  for (int t = 0; t < n_frames; ++t) {
    const float* src = x.data() + size_t(t) * hop;
    bool silent = true;
    for (int j = 0; j < n_fft; ++j) {
      frame[j] = src[j] * plan->window[j];
      silent = silent && src[j] == 0.0f;
    }
    if (silent) {
      for (int m = 0; m < n_mels; ++m) out[size_t(m) * n_frames + t] = silent_log;
      max_log = std::max(max_log, silent_log);
      continue;
    }
    kiss_fftr(fft, frame.data(), spectrum.data());
    for (int k = 0; k < n_bins; ++k)
      power[k] = double(spectrum[k].r) * spectrum[k].r + double(spectrum[k].i) * spectrum[k].i;
    for (int m = 0; m < n_mels; ++m) {
      const mel_plan::filter& f = plan->filters[m];
      double e = 0.0;
      for (size_t k = 0; k < f.weights.size(); ++k) e += f.weights[k] * power[f.first_bin + k];
      const float v = static_cast<float>(std::log10(std::max(e, 1e-10)));
      out[size_t(m) * n_frames + t] = v;
      max_log = std::max(max_log, v);
    }
  }
  // Dynamic range: 80 dB below the loudest bin of the whole window, then scaled to about [-1, 1].
  const float floor_log = max_log - 8.0f;
  for (float& v : out) v = (std::max(v, floor_log) + 4.0f) / 4.0f;
  return out;
}

}  // namespace autoglm
