// media/audio_vorbis.cpp: Ogg Vorbis through libvorbisfile, reading the bytes in place with its callbacks.
// Not through libsndfile: when a Vorbis header is malformed, libsndfile (1.2.0, and upstream as of 2024) returns
// from vorbis_read_header without vorbis_info_clear, leaking ~5.8 KB per file — 70% of header-mutated files in
// tests/media/audio_decode_test.cpp did, and a server would leak that per bad upload. libvorbisfile clears its
// state on a failed open, except on a read error while it searches the links of a chained file (1.3.7 and
// upstream leak a list of serial numbers there): audio_decode.cpp lets only single-stream files through.
#include <vorbis/vorbisfile.h>

#include <algorithm>
#include <cstring>

#include "media/audio_stream.h"

namespace autoglm {

namespace {

// The bytes as a stdio-like file: libvorbisfile's callbacks follow fread/fseek/ftell, where seeking past the end
// succeeds and reading there returns nothing.
struct memory_source {
  const uint8_t* data;
  size_t size;
  size_t pos;  // may be past the end
};

size_t cb_read(void* dst, size_t size, size_t count, void* user) {
  auto* m = static_cast<memory_source*>(user);
  if (size == 0 || m->pos >= m->size) return 0;
  const size_t items = std::min(count, (m->size - m->pos) / size);
  std::memcpy(dst, m->data + m->pos, items * size);
  m->pos += items * size;
  return items;
}

int cb_seek(void* user, ogg_int64_t offset, int whence) {
  auto* m = static_cast<memory_source*>(user);
  const ogg_int64_t size = static_cast<ogg_int64_t>(m->size);
  const ogg_int64_t base = whence == SEEK_SET ? 0 : whence == SEEK_CUR ? static_cast<ogg_int64_t>(m->pos) : size;
  const ogg_int64_t limit = ogg_int64_t(1) << 40;  // far past any accepted file; keeps base + offset in range
  if (offset > limit || offset < -limit || base > limit) return -1;
  const ogg_int64_t to = base + offset;
  if (to < 0) return -1;
  m->pos = static_cast<size_t>(to);
  return 0;
}

long cb_tell(void* user) { return static_cast<long>(static_cast<memory_source*>(user)->pos); }

const char* vorbisfile_error(int code) {
  switch (code) {
    case OV_EREAD: return "read error";
    case OV_ENOTVORBIS: return "not Vorbis data";
    case OV_EVERSION: return "unsupported Vorbis version";
    case OV_EBADHEADER: return "invalid Vorbis header";
    case OV_EFAULT: return "decoder fault";
    case OV_HOLE: return "a gap in the data";
    case OV_EBADLINK: return "an invalid link in a chained stream";
    case OV_EINVAL: return "invalid stream";
    default: return "corrupt data";
  }
}

class vorbis_stream final : public audio_stream {
 public:
  vorbis_stream(const uint8_t* data, size_t size) {
    source_ = {data, size, 0};
    const ov_callbacks callbacks = {cb_read, cb_seek, nullptr, cb_tell};
    const int r = ov_open_callbacks(&source_, &file_, nullptr, 0, callbacks);
    if (r < 0)
      audio_fail(audio_format::ogg, std::string("cannot read the Vorbis stream (") + vorbisfile_error(r) + ")");
    open_ = true;
    const vorbis_info* vi = ov_info(&file_, -1);
    if (!vi) audio_fail(audio_format::ogg, "cannot read the Vorbis stream (no stream information)");
    if (ov_streams(&file_) != 1) audio_fail(audio_format::ogg, "chained Ogg streams are not supported");
    info.format = audio_format::ogg;
    info.channels = vi->channels;
    info.sample_rate = vi->rate > 0 && vi->rate <= INT32_MAX ? static_cast<int>(vi->rate) : 0;
    const ogg_int64_t total = ov_pcm_total(&file_, -1);
    if (total < 0) audio_fail(audio_format::ogg, "the Vorbis stream does not state its length");
    info.frames = declared_frames = total;
    info.exact_length = true;
  }
  ~vorbis_stream() override {
    if (open_) ov_clear(&file_);
  }

  size_t read(float* out, size_t max_frames) override {
    // Never past the length the granule positions declare (libsndfile stops there too).
    const int64_t left = declared_frames - decoded_;
    if (left <= 0) return 0;
    const int want = static_cast<int>(std::min<int64_t>({int64_t(max_frames), left, 1 << 20}));
    float** pcm = nullptr;
    int link = 0;
    const long got = ov_read_float(&file_, &pcm, want, &link);
    if (got < 0)
      audio_fail(audio_format::ogg, std::string("corrupt data (") + vorbisfile_error(static_cast<int>(got)) + ")");
    const int channels = info.channels;
    for (long i = 0; i < got; ++i)
      for (int c = 0; c < channels; ++c) out[size_t(i) * channels + c] = pcm[c][i];
    decoded_ += got;
    return static_cast<size_t>(got);
  }

 private:
  memory_source source_{};
  OggVorbis_File file_{};
  bool open_ = false;
  int64_t decoded_ = 0;
};

}  // namespace

std::unique_ptr<audio_stream> open_vorbis_stream(const uint8_t* data, size_t size) {
  return std::make_unique<vorbis_stream>(data, size);
}

}  // namespace autoglm
