// media/audio_sndfile.cpp: WAV, FLAC and Ogg Opus through libsndfile, reading the bytes in place with its virtual
// I/O. libsndfile tolerates truncation where it can; a WAV data chunk that runs past the end of the file (which
// libsndfile silently shortens) is caught here, an Ogg file without its last page by ogg_check_pages before
// (audio_decode.cpp), and FLAC or Opus that decodes to fewer samples than its header declares after decoding,
// through declared_frames.
#include <sndfile.h>

#include <algorithm>
#include <cstring>

#include "media/audio_stream.h"

namespace autoglm {

namespace {

struct memory_source {
  const uint8_t* data;
  sf_count_t size, pos;
};

sf_count_t vio_length(void* user) { return static_cast<memory_source*>(user)->size; }

sf_count_t vio_seek(sf_count_t offset, int whence, void* user) {
  auto* m = static_cast<memory_source*>(user);
  const sf_count_t base = whence == SEEK_SET ? 0 : whence == SEEK_CUR ? m->pos : m->size;
  if (offset > m->size || offset < -m->size) return -1;  // keeps base + offset from overflowing
  const sf_count_t to = base + offset;
  if (to < 0 || to > m->size) return -1;
  m->pos = to;
  return to;
}

sf_count_t vio_read(void* dst, sf_count_t count, void* user) {
  auto* m = static_cast<memory_source*>(user);
  if (count <= 0) return 0;
  const sf_count_t n = std::min(count, m->size - m->pos);
  std::memcpy(dst, m->data + m->pos, static_cast<size_t>(n));
  m->pos += n;
  return n;
}

sf_count_t vio_tell(void* user) { return static_cast<memory_source*>(user)->pos; }

uint32_t le32(const uint8_t* p) { return p[0] | (p[1] << 8) | (p[2] << 16) | (uint32_t(p[3]) << 24); }

// The data chunk of a RIFF/WAVE file must fit in the file. 0 and 0xFFFFFFFF are what streaming writers leave
// when they cannot seek back: "to the end of the file", not a truncation.
void check_wav_data_chunk(const uint8_t* d, size_t n) {
  size_t pos = 12;
  while (pos + 8 <= n) {
    const uint32_t len = le32(d + pos + 4);
    if (std::memcmp(d + pos, "data", 4) == 0) {
      const size_t avail = n - (pos + 8);
      if (len != 0 && len != 0xFFFFFFFFu && len > avail)
        audio_fail(audio_format::wav, "truncated file: the data chunk declares " + std::to_string(len) +
                                          " bytes but the file holds " + std::to_string(avail));
      return;
    }
    pos += 8 + size_t(len) + (len & 1);
  }
}

class sndfile_stream final : public audio_stream {
 public:
  sndfile_stream(const uint8_t* data, size_t size, audio_format format) : format_(format) {
    source_ = {data, static_cast<sf_count_t>(size), 0};
    // libsndfile guesses the container itself; the sniffed format must be what it found, so only the parsers of
    // the supported formats ever see client bytes.
    file_.reset(sf_open_virtual(&io_, SFM_READ, &sf_, &source_));
    if (!file_) audio_fail(format, std::string("cannot read the file (") + sf_strerror(nullptr) + ")");
    const int major = sf_.format & SF_FORMAT_TYPEMASK;
    const bool matches = (format == audio_format::wav && (major == SF_FORMAT_WAV || major == SF_FORMAT_WAVEX)) ||
                         (format == audio_format::flac && major == SF_FORMAT_FLAC) ||
                         (format == audio_format::ogg && major == SF_FORMAT_OGG);
    if (!matches) audio_fail(format, std::string("the file does not parse as ") + audio_format_name(format));
    info.format = format;
    info.channels = sf_.channels;
    info.sample_rate = sf_.samplerate;
    if (format == audio_format::wav) check_wav_data_chunk(data, size);
    if (sf_.frames == SF_COUNT_MAX) audio_fail(format, "the header does not state the length");
    info.frames = declared_frames = sf_.frames;
    info.exact_length = true;
  }
  size_t read(float* out, size_t max_frames) override {
    const sf_count_t got = sf_readf_float(file_.get(), out, static_cast<sf_count_t>(max_frames));
    if (got > 0) return static_cast<size_t>(got);
    if (sf_error(file_.get()) != SF_ERR_NO_ERROR)
      audio_fail(format_, std::string("corrupt or truncated data (") + sf_strerror(file_.get()) + ")");
    return 0;
  }

 private:
  audio_format format_;
  memory_source source_{};
  SF_VIRTUAL_IO io_{vio_length, vio_seek, vio_read, nullptr, vio_tell};
  SF_INFO sf_{};
  struct closer {
    void operator()(SNDFILE* f) const { sf_close(f); }
  };
  std::unique_ptr<SNDFILE, closer> file_;  // declared last: closed first, while source_ still exists
};

}  // namespace

std::unique_ptr<audio_stream> open_sndfile_stream(const uint8_t* data, size_t size, audio_format format) {
  return std::make_unique<sndfile_stream>(data, size, format);
}

}  // namespace autoglm
