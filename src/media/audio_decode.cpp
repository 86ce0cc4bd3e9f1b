// media/audio_decode.cpp: audio bytes to 16 kHz mono floats — what every format shares.
//  - The format comes from the content (sniff_audio_format), before any library looks at the bytes: only the
//    four supported formats reach a parser (libsndfile alone knows two dozen, each an attack surface).
//  - Limits come from the header, before decoding: bytes first, then channels, sample rate and duration once the
//    stream is open (audio_stream.h: libsndfile for WAV/FLAC/Ogg Opus, libvorbisfile for Ogg Vorbis, libmpg123
//    for MP3). The duration is checked again while decoding, in case a header understates it.
//  - Truncation is an error: an Ogg file whose last page is cut off or not flagged end-of-stream (ogg_pages.h;
//    junk after it is dropped), a stream that decodes to fewer samples than its header declares.
//  - Decoding runs in blocks: channels averaged, NaN -> 0, clamped to [-1, 1], resampled (audio_resample.h).
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>

#include "media/audio.h"
#include "media/audio_resample.h"
#include "media/audio_stream.h"
#include "media/mpeg_frame.h"
#include "media/ogg_pages.h"

namespace autoglm {

namespace {

constexpr int k_target_rate = 16000;
constexpr const char* k_supported = "supported: WAV, FLAC, OGG (Vorbis, Opus), MP3";
// How far short of its declared length a stream may decode without being called truncated: WAV, FLAC and Ogg
// declare exact lengths; an MP3 decoder may drop up to one frame (1152 samples) at a damaged end.
int64_t truncation_slack(audio_format f) { return f == audio_format::mp3 ? 1152 : 0; }

bool has(const uint8_t* d, size_t n, size_t off, const char* magic, size_t len) {
  return n >= off + len && std::memcmp(d + off, magic, len) == 0;
}

std::string seconds_text(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g s", s);
  return buf;
}

// "mp3", ".MP3", "audio/mpeg", "speech.wav" -> the format it names (unknown when it names none we know).
audio_format format_from_hint(const std::string& hint) {
  std::string h;
  for (char c : hint) h += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (char sep : {'/', '.'}) {
    const size_t at = h.rfind(sep);
    if (at != std::string::npos) h = h.substr(at + 1);
  }
  if (h == "wav" || h == "wave" || h == "x-wav" || h == "vnd.wave") return audio_format::wav;
  if (h == "flac" || h == "x-flac") return audio_format::flac;
  if (h == "ogg" || h == "oga" || h == "opus" || h == "vorbis") return audio_format::ogg;
  if (h == "mp3" || h == "mpeg" || h == "mpga" || h == "mpeg3" || h == "x-mpeg-3") return audio_format::mp3;
  if (h == "mp4" || h == "m4a" || h == "x-m4a") return audio_format::mp4;
  if (h == "webm" || h == "mkv" || h == "mka") return audio_format::webm;
  if (h == "aiff" || h == "aif" || h == "aifc" || h == "x-aiff") return audio_format::aiff;
  if (h == "aac") return audio_format::aac;
  if (h == "amr") return audio_format::amr;
  return audio_format::unknown;
}

bool supported(audio_format f) {
  return f == audio_format::wav || f == audio_format::flac || f == audio_format::ogg || f == audio_format::mp3;
}

// Sniffs and applies the byte limit. An MP3 with junk before its first frame is found only when the hint says
// mp3 (two consecutive frame headers in the first 64 KiB); `data`/`size` then start at that frame.
audio_format checked_format(const uint8_t*& data, size_t& size, const audio_limits& limits, const std::string& hint) {
  if (!data || size == 0) audio_fail(audio_format::unknown, "empty file");
  if (size > limits.max_bytes)
    audio_fail(audio_format::unknown, "the file is " + std::to_string(size) + " bytes, over the limit of " +
                                          std::to_string(limits.max_bytes));
  const audio_format hinted = hint.empty() ? audio_format::unknown : format_from_hint(hint);
  audio_format f = sniff_audio_format(data, size);
  if (f == audio_format::unknown && hinted == audio_format::mp3) {
    const size_t at = mpeg_find_stream(data, size);
    if (at != SIZE_MAX) {
      data += at, size -= at;
      f = audio_format::mp3;
    }
  }
  if (supported(f)) return f;
  if (f != audio_format::unknown) audio_fail(f, std::string("this format is not supported; ") + k_supported);
  std::string what = "unrecognized format";
  if (!hint.empty()) {
    what += " (the request names it '" + hint + "'";
    if (hinted != audio_format::unknown && !supported(hinted))
      what += std::string(": ") + audio_format_name(hinted) + " is not supported)";
    else
      what += ", but the content is not that)";
  }
  audio_fail(f, what + "; " + k_supported);
}

// Opens the stream and applies the limits the header allows checking.
std::unique_ptr<audio_stream> open_checked(const uint8_t* data, size_t size, const audio_limits& limits,
                                           const std::string& hint) {
  const audio_format fmt = checked_format(data, size, limits, hint);
  std::unique_ptr<audio_stream> s;
  if (fmt == audio_format::mp3) {
    s = open_mp3_stream(data, size);
  } else if (fmt == audio_format::ogg) {
    const ogg_codec codec = ogg_first_codec(data, size);
    if (codec != ogg_codec::vorbis && codec != ogg_codec::opus)
      audio_fail(fmt,
                 codec == ogg_codec::unknown
                     ? std::string("the first page is damaged or holds an unknown codec; ") + k_supported
                     : std::string("the stream is ") + ogg_codec_name(codec) + ", not Vorbis or Opus; " + k_supported);
    const ogg_scan pages = ogg_check_pages(data, size);
    if (!pages.problem.empty()) audio_fail(fmt, "truncated file: " + pages.problem);
    // One logical stream only. A chained file would need a resampler per link, and libvorbisfile's search for
    // the links leaks on a read error (1.3.7: _bisect_forward_serialno returns without freeing its list).
    if (pages.several_streams) audio_fail(fmt, "chained or multiplexed Ogg streams are not supported");
    s = codec == ogg_codec::vorbis ? open_vorbis_stream(data, pages.end) : open_sndfile_stream(data, pages.end, fmt);
  } else {
    s = open_sndfile_stream(data, size, fmt);
  }
  const audio_info& info = s->info;
  if (info.channels < 1 || info.channels > limits.max_channels)
    audio_fail(fmt, std::to_string(info.channels) + " channels, the limit is " + std::to_string(limits.max_channels));
  if (info.sample_rate < limits.min_sample_rate || info.sample_rate > limits.max_sample_rate)
    audio_fail(fmt, "sample rate " + std::to_string(info.sample_rate) + " Hz is outside the accepted " +
                        std::to_string(limits.min_sample_rate) + ".." + std::to_string(limits.max_sample_rate) + " Hz");
  if (info.frames >= 0 && s->declared_frames >= 0 && info.frames + truncation_slack(fmt) < s->declared_frames)
    audio_fail(fmt, "truncated file: the header declares " + std::to_string(s->declared_frames) +
                        " samples, the data holds " + std::to_string(info.frames));
  if (info.frames == 0) audio_fail(fmt, "the file holds no audio samples");
  if (info.frames > 0 && info.seconds() > limits.max_seconds)
    audio_fail(fmt, "the audio is " + seconds_text(info.seconds()) + " long, over the limit of " +
                        seconds_text(limits.max_seconds));
  if (info.frames > 0 && info.frames > limits.max_decoded_samples / info.channels)
    audio_fail(fmt, seconds_text(info.seconds()) + " of " + std::to_string(info.channels) + " channels at " +
                        std::to_string(info.sample_rate) + " Hz is over the limit of " +
                        std::to_string(limits.max_decoded_samples) + " decoded samples");
  return s;
}

// Channel average of `frames` interleaved frames, NaN -> 0, each sample clamped to [-1, 1] first (float files
// may hold anything).
void mix_to_mono(const float* in, size_t frames, int channels, float* out) {
  const float scale = 1.0f / static_cast<float>(channels);
  for (size_t i = 0; i < frames; ++i) {
    float s = 0.0f;
    for (int c = 0; c < channels; ++c) {
      const float v = in[i * channels + c];
      s += std::isnan(v) ? 0.0f : std::clamp(v, -1.0f, 1.0f);
    }
    out[i] = channels == 1 ? s : s * scale;
  }
}

}  // namespace

audio_format sniff_audio_format(const uint8_t* d, size_t n) {
  if (!d) return audio_format::unknown;
  if (has(d, n, 0, "RIFF", 4) && has(d, n, 8, "WAVE", 4)) return audio_format::wav;
  if (has(d, n, 0, "fLaC", 4)) return audio_format::flac;
  if (has(d, n, 0, "OggS", 4)) return audio_format::ogg;
  if (has(d, n, 0, "ID3", 3)) return audio_format::mp3;  // an ID3v2 tag in front of the first frame
  if (has(d, n, 4, "ftyp", 4)) return audio_format::mp4;
  if (has(d, n, 0, "\x1a\x45\xdf\xa3", 4)) return audio_format::webm;
  if (has(d, n, 0, "FORM", 4) && (has(d, n, 8, "AIFF", 4) || has(d, n, 8, "AIFC", 4))) return audio_format::aiff;
  if (has(d, n, 0, "#!AMR", 5)) return audio_format::amr;
  if (n >= 4 && d[0] == 0xFF && (d[1] & 0xF6) == 0xF0) return audio_format::aac;  // ADTS: MPEG sync, layer 00
  if (mpeg_parse_frame_header(d, n).valid) return audio_format::mp3;
  return audio_format::unknown;
}

const char* audio_format_name(audio_format f) {
  switch (f) {
    case audio_format::wav: return "WAV";
    case audio_format::flac: return "FLAC";
    case audio_format::ogg: return "OGG";
    case audio_format::mp3: return "MP3";
    case audio_format::mp4: return "MP4/M4A";
    case audio_format::webm: return "WebM/Matroska";
    case audio_format::aiff: return "AIFF";
    case audio_format::aac: return "AAC (ADTS)";
    case audio_format::amr: return "AMR";
    default: return "unknown";
  }
}

int64_t audio_info::frames_16k() const {
  if (frames < 0 || sample_rate <= 0) return -1;
  return static_cast<int64_t>(std::llround(static_cast<double>(frames) * k_target_rate / sample_rate));
}

audio_info probe_audio(const uint8_t* data, size_t size, const audio_limits& limits, const std::string& format_hint) {
  return open_checked(data, size, limits, format_hint)->info;
}

std::vector<float> decode_audio_16k_mono(const uint8_t* data, size_t size, const audio_limits& limits,
                                         const std::string& format_hint) {
  const std::unique_ptr<audio_stream> s = open_checked(data, size, limits, format_hint);
  const audio_info info = s->info;
  // For streams whose header understates their length: both limits again, while decoding.
  const double max_frames = std::min(limits.max_seconds * info.sample_rate,
                                     static_cast<double>(limits.max_decoded_samples / info.channels));

  audio_resampler resampler(info.sample_rate, k_target_rate);
  std::vector<float> out;
  // Reserved from the header only up to 10 minutes: a truncated file may declare an hour it does not hold.
  if (info.frames > 0) out.reserve(static_cast<size_t>(std::min<int64_t>(info.frames_16k(), 600 * k_target_rate)) + 64);
  constexpr size_t k_block = 8192;  // frames per read: memory stays bounded whatever the length
  std::vector<float> block(k_block * info.channels), mono(k_block);
  int64_t n_frames = 0;
  while (const size_t got = s->read(block.data(), k_block)) {
    n_frames += static_cast<int64_t>(got);
    if (static_cast<double>(n_frames) > max_frames)
      audio_fail(info.format, "the audio is longer than the limits (" + seconds_text(limits.max_seconds) + ", " +
                                  std::to_string(limits.max_decoded_samples) + " decoded samples)");
    mix_to_mono(block.data(), got, info.channels, mono.data());
    resampler.push(mono.data(), got, out);
  }
  if (s->declared_frames >= 0 && n_frames + truncation_slack(info.format) < s->declared_frames)
    audio_fail(info.format, "truncated file: the header declares " + std::to_string(s->declared_frames) +
                                " samples, the data holds " + std::to_string(n_frames));
  if (n_frames == 0) audio_fail(info.format, "the file holds no audio samples");
  resampler.finish(out);
  if (out.empty())
    audio_fail(info.format, "the audio is too short: " + std::to_string(n_frames) + " samples at " +
                                std::to_string(info.sample_rate) + " Hz make no sample at 16 kHz");
  // soxr's ringing can overshoot a full-scale input a little.
  for (float& v : out) v = std::clamp(v, -1.0f, 1.0f);
  return out;
}

}  // namespace autoglm
