// media/audio.h: audio files in, 16 kHz mono float samples out — format sniffing, header probing with limits
// checked before any sample is decoded, decoding (libsndfile: WAV, FLAC, Ogg Vorbis/Opus, and MP3 through its
// libmpg123 backend), channel mixing and resampling to 16 kHz (libsoxr).
// Errors are invalid_request (core/error.h): the bytes come from a client, and every failure is the client's file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace autoglm {

struct audio_limits {
  size_t max_bytes = 25u << 20;  // upload size (OpenAI's limit is 25 MB)
  double max_seconds = 3600.0;   // decoded duration, checked from the header before decoding
  int max_channels = 8;
  int max_sample_rate = 384000;
  int min_sample_rate = 1000;  // below this a header is corrupt, not a recording
  // Samples decoded over all channels: what decoding costs. The default is an hour of 48 kHz stereo; without it a
  // small FLAC of constant samples could declare an hour of 8 channels at 384 kHz (1.1e10 samples of work).
  int64_t max_decoded_samples = int64_t(3600) * 48000 * 2;
};

// What the first bytes say. The second group is recognized only to name it in the error.
enum class audio_format { unknown, wav, flac, ogg, mp3, mp4, webm, aiff, aac, amr };
audio_format sniff_audio_format(const uint8_t* data, size_t size);
const char* audio_format_name(audio_format f);

// What the header says, before decoding: the length comes from the container (WAV data size, FLAC STREAMINFO,
// the last Ogg granule position) or, for MP3, from scanning every frame header (no decoding). An MP3 decodes to
// fewer samples than that when frames are damaged (libmpg123 skips them): for MP3 it is an upper bound.
struct audio_info {
  audio_format format = audio_format::unknown;
  int channels = 0;
  int sample_rate = 0;
  int64_t frames = -1;  // -1: unknown
  bool exact_length = false;
  double seconds() const { return frames < 0 || sample_rate <= 0 ? -1.0 : double(frames) / sample_rate; }
  // Samples decode_audio_16k_mono returns for this file, within a few (resampler rounding); -1 when unknown.
  int64_t frames_16k() const;
};

// Reads the header only: applies every limit (bytes, channels, sample rate, duration) and the checks that need
// no decoding (a WAV data chunk that runs past the end of the file, an Ogg stream without its last page).
// Throws invalid_request like decode_audio_16k_mono.
audio_info probe_audio(const uint8_t* data, size_t size, const audio_limits& limits = {},
                       const std::string& format_hint = "");

// Decodes WAV/FLAC/OGG(Vorbis, Opus)/MP3 bytes (format sniffed from the content; `format_hint` like "wav"/"mp3",
// a file extension or a MIME subtype, only helps: an MP3 with junk before its first frame is found when the hint
// says mp3, and errors name the hint) to 16 kHz mono float samples in [-1, 1] (channels averaged, resampled with
// soxr; 16 kHz mono input is returned sample for sample). NaN samples of float files become 0, others are
// clamped to [-1, 1].
// Throws invalid_request with a clear message for malformed, truncated, unsupported or over-limit input.
std::vector<float> decode_audio_16k_mono(const uint8_t* data, size_t size, const audio_limits& limits = {},
                                         const std::string& format_hint = "");

}  // namespace autoglm
