// media/audio_mp3.cpp: MP3 (and MP1/MP2) through libmpg123, reading the bytes in place with a reader handle.
// Used directly rather than through libsndfile's MPEG backend, because libsndfile stops reading at the length
// libmpg123 first reports, which for a VBR file without a Xing/Info/VBRI tag is an estimate from the file size
// (a 3 s file came out as 1.5 s). Here the stream is scanned frame by frame (headers only, no decoding) when it
// is opened, so the length — and the duration limit — are exact before anything is decoded. The tag, when there
// is one, is the declared length: a scan that finds fewer samples means a truncated file.
// Gapless decoding (libmpg123's default) trims the encoder delay and padding the LAME tag records, so a tagged
// file decodes to exactly the samples that were encoded.
#include <mpg123.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <mutex>

#include "media/audio_stream.h"
#include "media/mpeg_frame.h"

namespace autoglm {

namespace {

struct memory_source {
  const uint8_t* data;
  size_t size, pos;
};

mpg123_ssize_t reader_read(void* user, void* dst, size_t count) {
  auto* m = static_cast<memory_source*>(user);
  const size_t n = std::min(count, m->size - m->pos);
  std::memcpy(dst, m->data + m->pos, n);
  m->pos += n;
  return static_cast<mpg123_ssize_t>(n);
}

off_t reader_seek(void* user, off_t offset, int whence) {
  auto* m = static_cast<memory_source*>(user);
  const off_t size = static_cast<off_t>(m->size);
  const off_t base = whence == SEEK_SET ? 0 : whence == SEEK_CUR ? static_cast<off_t>(m->pos) : size;
  if (offset > size || offset < -size) return -1;
  const off_t to = base + offset;
  if (to < 0 || to > size) return -1;
  m->pos = static_cast<size_t>(to);
  return to;
}

class mp3_stream final : public audio_stream {
 public:
  mp3_stream(const uint8_t* data, size_t size) {
    // mpg123_init is a no-op since libmpg123 1.27 but was required (and not thread-safe) before.
    static std::once_flag once;
    std::call_once(once, [] { mpg123_init(); });
    int err = MPG123_OK;
    handle_.reset(mpg123_new(nullptr, &err));
    if (!handle_)
      audio_fail(audio_format::mp3, std::string("cannot create a decoder (") + mpg123_plain_strerror(err) + ")");
    mpg123_handle* h = handle_.get();
    // Quiet: libmpg123 prints warnings about damaged streams to stderr otherwise.
    mpg123_param(h, MPG123_ADD_FLAGS, MPG123_QUIET, 0.0);
    // Float output at the stream's own rate and channel count; soxr resamples afterwards.
    mpg123_format_none(h);
    const long* rates = nullptr;
    size_t n_rates = 0;
    mpg123_rates(&rates, &n_rates);
    for (size_t i = 0; i < n_rates; ++i) mpg123_format(h, rates[i], MPG123_MONO | MPG123_STEREO, MPG123_ENC_FLOAT_32);
    source_ = {data, size, 0};
    check(mpg123_replace_reader_handle(h, reader_read, reader_seek, nullptr), "cannot set up the reader");
    check(mpg123_open_handle(h, &source_), "cannot open the stream");
    long rate = 0;
    int channels = 0, encoding = 0;
    check(mpg123_getformat(h, &rate, &channels, &encoding), "no valid MPEG audio frame");
    if (encoding != MPG123_ENC_FLOAT_32) audio_fail(audio_format::mp3, "the decoder does not give float samples");
    const bool tagged = mpeg_has_length_tag(data, size);
    if (tagged) declared_frames = mpg123_length(h);
    check(mpg123_scan(h), "cannot scan the frames");
    info.format = audio_format::mp3;
    info.channels = channels;
    info.sample_rate = static_cast<int>(rate);
    info.frames = mpg123_length(h);
    info.exact_length = info.frames >= 0;
  }

  size_t read(float* out, size_t max_frames) override {
    // Never more than the scan counted: with damaged frames libmpg123's gapless trimming can come out a few
    // hundred samples longer, and callers charge the probed length.
    if (info.frames >= 0) {
      if (decoded_ >= info.frames) return 0;
      max_frames = static_cast<size_t>(std::min<int64_t>(int64_t(max_frames), info.frames - decoded_));
    }
    const size_t n = read_some(out, max_frames);
    decoded_ += static_cast<int64_t>(n);
    return n;
  }

 private:
  size_t read_some(float* out, size_t max_frames) {
    const size_t frame_bytes = sizeof(float) * info.channels;
    // A call may return a format notice and no samples; a decoder that keeps returning nothing is an error.
    for (int attempt = 0; attempt < 8 && !done_; ++attempt) {
      size_t bytes = 0;
      const int r = mpg123_read(handle_.get(), reinterpret_cast<unsigned char*>(out), max_frames * frame_bytes, &bytes);
      if (r == MPG123_DONE) {
        done_ = true;
      } else if (r == MPG123_NEW_FORMAT) {
        long rate = 0;
        int channels = 0, encoding = 0;
        mpg123_getformat(handle_.get(), &rate, &channels, &encoding);
        if (rate != info.sample_rate || channels != info.channels)
          audio_fail(audio_format::mp3, "the sample rate or channel count changes inside the stream (" +
                                            std::to_string(info.sample_rate) + " Hz x " +
                                            std::to_string(info.channels) + " -> " + std::to_string(rate) + " Hz x " +
                                            std::to_string(channels) + ")");
      } else if (r != MPG123_OK) {
        audio_fail(audio_format::mp3, std::string("corrupt data (") + mpg123_strerror(handle_.get()) + ")");
      }
      if (bytes % frame_bytes) audio_fail(audio_format::mp3, "the decoder returned a partial frame");
      if (bytes) return bytes / frame_bytes;
    }
    if (!done_) audio_fail(audio_format::mp3, "the decoder makes no progress");
    return 0;
  }

  void check(int result, const char* what) {
    if (result != MPG123_OK)
      audio_fail(audio_format::mp3, std::string(what) + " (" + mpg123_strerror(handle_.get()) + ")");
  }

  struct deleter {
    void operator()(mpg123_handle* h) const {
      mpg123_close(h);
      mpg123_delete(h);
    }
  };
  memory_source source_{};
  std::unique_ptr<mpg123_handle, deleter> handle_;  // declared after source_: closed before it goes
  bool done_ = false;
  int64_t decoded_ = 0;
};

}  // namespace

std::unique_ptr<audio_stream> open_mp3_stream(const uint8_t* data, size_t size) {
  return std::make_unique<mp3_stream>(data, size);
}

}  // namespace autoglm
