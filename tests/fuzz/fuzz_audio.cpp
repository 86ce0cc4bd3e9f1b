// tests/fuzz/fuzz_audio.cpp: libFuzzer target for audio inputs (src/media): format sniffing, header probing with
// limits, decoding (libsndfile: WAV/FLAC/Ogg Vorbis/Opus; libmpg123: MP3), channel mixing and resampling to
// 16 kHz, then the Whisper log-mel of what was decoded.
// The format hint ("", "mp3" or "wav") comes from the input length, so seeds stay plain audio files. Limits are
// smaller than the server's (30 s, 96 kHz) so that a tiny FLAC of constant samples, which stands for minutes of
// audio, still runs fast; the code paths and limit checks are the same.
// Invariants: only autoglm::error escapes; a file that decodes also probes, and (when its length is exact) to
// the number of samples it decodes to (for MP3, at most that many: damaged frames are skipped); samples are finite
// and in [-1, 1]; the log-mel is finite.
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "core/error.h"
#include "fuzz_common.h"
#include "media/audio.h"
#include "media/whisper_features.h"

namespace {

using namespace autoglm;

const whisper_feature_config& one_second_mel() {
  static const whisper_feature_config cfg = [] {
    whisper_feature_config c;
    c.chunk_length = 1;
    c.n_samples = 16000;
    c.nb_max_frames = 100;
    return c;
  }();
  return cfg;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  audio_limits limits;
  limits.max_seconds = 30.0;
  limits.max_sample_rate = 96000;
  const char* hints[] = {"", "mp3", "wav"};
  const std::string hint = hints[size % 3];
  sniff_audio_format(data, size);

  audio_info info;
  bool probed = false;
  try {
    info = probe_audio(data, size, limits, hint);
    probed = true;
  } catch (const autoglm::error&) {
  }
  if (probed) {
    FUZZ_CHECK(info.channels >= 1 && info.channels <= limits.max_channels, std::to_string(info.channels));
    FUZZ_CHECK(info.sample_rate >= limits.min_sample_rate && info.sample_rate <= limits.max_sample_rate);
    FUZZ_CHECK(info.frames != 0 && info.seconds() <= limits.max_seconds, std::to_string(info.frames));
  }

  std::vector<float> pcm;
  try {
    pcm = decode_audio_16k_mono(data, size, limits, hint);
  } catch (const autoglm::error&) {
    return 0;  // a probe that passes may still meet corrupt or truncated data while decoding
  }
  FUZZ_CHECK(probed, std::string("decodes, but probe_audio refuses it (") +
                         audio_format_name(sniff_audio_format(data, size)) + ")");
  FUZZ_CHECK(!pcm.empty());
  FUZZ_CHECK(pcm.size() <= size_t(limits.max_seconds * 16000) + 16, std::to_string(pcm.size()));
  for (float v : pcm) FUZZ_CHECK(std::isfinite(v) && v >= -1.0f && v <= 1.0f, std::to_string(v));
  // What the chat layer would charge from the header must be what decoding gives (resampler rounding aside).
  // For MP3 the scanned length is an upper bound: libmpg123 skips frames it cannot decode.
  if (info.exact_length && info.frames > 0) {
    const int64_t expected = info.frames_16k(), got = int64_t(pcm.size());
    const bool upper_bound_only = info.format == audio_format::mp3;
    FUZZ_CHECK((upper_bound_only || got >= expected - 2) && got <= expected + 2,
               std::to_string(got) + " samples decoded, " + std::to_string(expected) + " from the header (" +
                   std::to_string(info.frames) + " at " + std::to_string(info.sample_rate) + " Hz)");
  }
  const std::vector<float> mel = whisper_log_mel(pcm.data(), pcm.size(), one_second_mel());
  for (float v : mel) FUZZ_CHECK(std::isfinite(v) && v >= -1.5f && v <= 4.0f, std::to_string(v));
  return 0;
}
