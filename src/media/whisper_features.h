// media/whisper_features.h: the log-mel spectrogram Whisper encoders take, computed as Hugging Face's
// WhisperFeatureExtractor does (transformers: models/whisper/feature_extraction_whisper.py and audio_utils.py):
//   pcm padded with padding_value (or truncated) to n_samples = chunk_length * sampling_rate
//   -> STFT: periodic Hann window of n_fft, hop hop_length, centered frames (n_fft/2 reflect padding each side)
//   -> power |X|^2 of the n_fft/2+1 bins, the last frame dropped (nb_max_frames = n_samples / hop_length remain)
//   -> Slaney-normalized triangular filters on the Slaney mel scale, 0..8000 Hz
//   -> log10(max(mel, 1e-10)), floored at (max over the whole window) - 8, then (x + 4) / 4.
// 80 bins for Whisper tiny..large-v2, 128 for large-v3 and turbo: feature_size in preprocessor_config.json.
// Numerics: single-precision FFT (kissfft), power, filters and log in double; see tests/media/whisper_mel_test.cpp
// and whisper_mel_parity_test.cpp for the measured distance to a double-precision DFT and to transformers.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace autoglm {

struct whisper_feature_config {  // from preprocessor_config.json (WhisperFeatureExtractor)
  int feature_size = 80;
  int sampling_rate = 16000;
  int hop_length = 160;
  int n_fft = 400;
  int chunk_length = 30;
  // Derived as transformers derives them (its __init__ recomputes them; values in the JSON are ignored).
  int n_samples = 480000;    // chunk_length * sampling_rate
  int nb_max_frames = 3000;  // n_samples / hop_length
  float padding_value = 0.0f;

  // Reads the file (regular file, bounded size and nesting); throws autoglm::error naming the file and key for a
  // missing/unreadable/malformed file, a feature_extractor_type other than WhisperFeatureExtractor, values out of
  // range, or a non-zero dither (random noise: no reproducible output).
  static whisper_feature_config load(const std::string& preprocessor_config_json_path);
  // The same checks on JSON text; `source` names it in errors.
  static whisper_feature_config parse(const std::string& json_text, const std::string& source);
  // Throws autoglm::error when the fields are out of range or n_samples / nb_max_frames are not the derived ones.
  void validate() const;
};

// transformers.audio_utils.mel_filter_bank(num_frequency_bins = n_fft/2 + 1, num_mel_filters = n_mels,
// min_frequency, max_frequency, sampling_rate, norm="slaney", mel_scale="slaney"), transposed:
// [n_mels, n_fft/2 + 1] row-major, in double as numpy computes it. Throws autoglm::error on invalid arguments.
std::vector<double> mel_filter_bank_slaney(int n_mels, int n_fft, int sampling_rate, double min_hz = 0.0,
                                           double max_hz = 8000.0);
double hertz_to_mel_slaney(double hz);  // linear below 1 kHz (3 mels per 200 Hz), logarithmic above
double mel_to_hertz_slaney(double mel);

// log-mel of one window: pcm padded with padding_value (or truncated) to n_samples; returns
// [feature_size, nb_max_frames] row-major float, as WhisperFeatureExtractor(...)(pcm, sampling_rate=16000,
// return_tensors="np").input_features[0]. pcm may be null when n is 0. Thread-safe; the window, filters and FFT
// twiddles are made once per config (and per thread for the FFT's scratch).
std::vector<float> whisper_log_mel(const float* pcm, size_t n, const whisper_feature_config& cfg);

}  // namespace autoglm
