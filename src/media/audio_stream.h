// media/audio_stream.h (internal to media): an opened audio file that yields interleaved float frames, with
// one implementation per decoding library — libsndfile (WAV, FLAC, Ogg Opus), libvorbisfile (Ogg Vorbis) and
// libmpg123 (MP3).
// Opening reads the header only and fills `info`; audio_decode.cpp applies the limits to it before reading.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "core/error.h"
#include "media/audio.h"

namespace autoglm {

class audio_stream {
 public:
  virtual ~audio_stream() = default;
  // Up to max_frames frames of info.channels interleaved samples into out; 0 at the end of the stream.
  // Throws invalid_request for corrupt data.
  virtual size_t read(float* out, size_t max_frames) = 0;

  audio_info info;
  // Samples the header declares, for the truncation check after decoding; -1 when it declares none or the
  // declaration is not exact (then a short stream cannot be told from a truncated one).
  int64_t declared_frames = -1;
};

// `data` must outlive the stream. Both throw invalid_request for a header they cannot parse.
std::unique_ptr<audio_stream> open_sndfile_stream(const uint8_t* data, size_t size, audio_format format);
std::unique_ptr<audio_stream> open_mp3_stream(const uint8_t* data, size_t size);
std::unique_ptr<audio_stream> open_vorbis_stream(const uint8_t* data, size_t size);

// "audio (FLAC): <what>", the error every audio failure is.
[[noreturn]] inline void audio_fail(audio_format f, const std::string& what) {
  throw invalid_request(std::string("audio") +
                        (f == audio_format::unknown ? std::string() : std::string(" (") + audio_format_name(f) + ")") +
                        ": " + what);
}

}  // namespace autoglm
