// tests/media/audio_util.h: what the audio tests share — the committed assets (tests/assets/audio/), WAV files
// written into memory (so limits and malformed headers can be built byte by byte), tones, and the measures the
// tests compare with: a least-squares tone fit and a signal-to-noise ratio.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

namespace autoglm::test {

inline std::filesystem::path audio_asset(const std::string& name) {
  const char* env = std::getenv("AUTOGLM_SOURCE_DIR");
  return std::filesystem::path(env && *env ? env : AUTOGLM_SOURCE_DIR) / "tests" / "assets" / "audio" / name;
}

inline std::vector<uint8_t> read_bytes(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) throw std::runtime_error("cannot open " + p.string());
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}

inline std::vector<uint8_t> read_asset(const std::string& name) { return read_bytes(audio_asset(name)); }

inline void put_le(std::vector<uint8_t>& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

// Fields of a canonical 44-byte WAV header, each overridable so tests can write headers that lie.
struct wav_header {
  uint16_t format_tag = 1;  // 1 PCM, 3 IEEE float
  uint16_t channels = 1;
  uint32_t sample_rate = 16000;
  uint16_t bits = 16;
  int64_t block_align = -1;  // -1: channels * bits / 8
  int64_t data_bytes = -1;   // -1: the size of the data written
};

// Interleaved samples in [-1, 1] as PCM (8, 16, 24 or 32 bits, rounded) or float32 (format_tag 3, written as is).
inline std::vector<uint8_t> make_wav(const std::vector<float>& samples, const wav_header& h = {}) {
  std::vector<uint8_t> data;
  for (float s : samples) {
    if (h.format_tag == 3) {
      uint32_t u;
      std::memcpy(&u, &s, 4);
      put_le(data, u, 4);
    } else if (h.bits == 8) {
      data.push_back(static_cast<uint8_t>(std::lround(std::fmax(-128.0, std::fmin(127.0, s * 128.0))) + 128));
    } else {
      const double scale = std::ldexp(1.0, h.bits - 1);
      const int64_t v = std::llround(std::fmax(-scale, std::fmin(scale - 1, s * scale)));
      put_le(data, static_cast<uint64_t>(v), h.bits / 8);
    }
  }
  const uint32_t align = h.block_align >= 0 ? uint32_t(h.block_align) : uint32_t(h.channels * h.bits / 8);
  const uint32_t data_bytes = h.data_bytes >= 0 ? uint32_t(h.data_bytes) : uint32_t(data.size());
  std::vector<uint8_t> out;
  out.insert(out.end(), {'R', 'I', 'F', 'F'});
  put_le(out, 36 + data.size(), 4);
  out.insert(out.end(), {'W', 'A', 'V', 'E', 'f', 'm', 't', ' '});
  put_le(out, 16, 4);
  put_le(out, h.format_tag, 2);
  put_le(out, h.channels, 2);
  put_le(out, h.sample_rate, 4);
  put_le(out, uint64_t(h.sample_rate) * align, 4);
  put_le(out, align, 2);
  put_le(out, h.bits, 2);
  out.insert(out.end(), {'d', 'a', 't', 'a'});
  put_le(out, data_bytes, 4);
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

// amplitude * sin(2 pi f t + phase) at `rate`, n samples.
inline std::vector<float> tone(double freq, double amplitude, int rate, size_t n, double phase = 0.0) {
  std::vector<float> v(n);
  const double pi = 3.14159265358979323846;
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<float>(amplitude * std::sin(2.0 * pi * freq * i / rate + phase));
  return v;
}

// Left/right tones interleaved.
inline std::vector<float> interleave(const std::vector<float>& l, const std::vector<float>& r) {
  std::vector<float> v;
  for (size_t i = 0; i < l.size(); ++i) v.insert(v.end(), {l[i], r[i]});
  return v;
}

// Least-squares fit of x[i] ~ a cos(w i) + b sin(w i) over [begin, end): the tone's amplitude and the RMS of what
// the tone does not explain. A wrong frequency (even 0.1 %) leaves a large residual over a fraction of a second.
struct tone_fit {
  double amplitude = 0, residual_rms = 0;
};
inline tone_fit fit_tone(const std::vector<float>& x, size_t begin, size_t end, double freq, int rate) {
  const double w = 2.0 * 3.14159265358979323846 * freq / rate;
  double cc = 0, ss = 0, cs = 0, xc = 0, xs = 0;
  for (size_t i = begin; i < end; ++i) {
    const double c = std::cos(w * i), s = std::sin(w * i);
    cc += c * c, ss += s * s, cs += c * s, xc += x[i] * c, xs += x[i] * s;
  }
  const double det = cc * ss - cs * cs;
  const double a = (xc * ss - xs * cs) / det, b = (xs * cc - xc * cs) / det;
  double r2 = 0;
  for (size_t i = begin; i < end; ++i) {
    const double e = x[i] - (a * std::cos(w * i) + b * std::sin(w * i));
    r2 += e * e;
  }
  return {std::hypot(a, b), std::sqrt(r2 / double(end - begin))};
}

// 10 log10(|ref|^2 / |x - scale * ref|^2) over the first min(len) samples.
inline double snr_db(const std::vector<float>& ref, const std::vector<float>& x, double scale = 1.0) {
  const size_t n = std::min(ref.size(), x.size());
  double sig = 0, err = 0;
  for (size_t i = 0; i < n; ++i) {
    const double r = scale * ref[i];
    sig += r * r;
    err += (x[i] - r) * (x[i] - r);
  }
  return 10.0 * std::log10(sig / std::max(err, 1e-30));
}

}  // namespace autoglm::test
