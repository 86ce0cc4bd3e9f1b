// tests/chat/test_util.h: helpers for the chat tests: fixture paths, PNG encoding (libpng), base64, byte tokens.
#pragma once

#include <png.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace autoglm::test {

inline std::string source_dir() {
  const char* env = std::getenv("AUTOGLM_SOURCE_DIR");
  return env ? env : AUTOGLM_SOURCE_DIR;
}
inline std::string fixture_model_dir() { return source_dir() + "/tests/fixtures/tiny_glm4v"; }
inline std::string fixture_tokenizer() { return fixture_model_dir() + "/tokenizer.json"; }
inline bool have_fixture_tokenizer() { return std::filesystem::exists(fixture_tokenizer()); }

inline std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}
inline std::string glm_template() { return read_text(source_dir() + "/tests/assets/glm4v/chat_template.jinja"); }

// An 8-bit RGB PNG of width x height with a deterministic gradient (seed varies the content).
inline std::vector<uint8_t> make_png(int width, int height, int seed = 0) {
  png_image img{};
  img.version = PNG_IMAGE_VERSION;
  img.width = uint32_t(width);
  img.height = uint32_t(height);
  img.format = PNG_FORMAT_RGB;
  std::vector<uint8_t> pixels(size_t(width) * height * 3);
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      uint8_t* p = &pixels[(size_t(y) * width + x) * 3];
      p[0] = uint8_t(x * 3 + seed);
      p[1] = uint8_t(y * 5 + seed * 7);
      p[2] = uint8_t((x ^ y) + seed * 13);
    }
  }
  png_alloc_size_t size = 0;
  if (!png_image_write_to_memory(&img, nullptr, &size, 0, pixels.data(), 0, nullptr)) {
    throw std::runtime_error("png size query failed");
  }
  std::vector<uint8_t> out(size);
  if (!png_image_write_to_memory(&img, out.data(), &size, 0, pixels.data(), 0, nullptr)) {
    throw std::runtime_error(std::string("png encode failed: ") + img.message);
  }
  out.resize(size);
  return out;
}

inline std::string base64(const std::vector<uint8_t>& data) {
  static const char* table = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (size_t i = 0; i < data.size(); i += 3) {
    uint32_t v = uint32_t(data[i]) << 16;
    if (i + 1 < data.size()) v |= uint32_t(data[i + 1]) << 8;
    if (i + 2 < data.size()) v |= data[i + 2];
    out += table[(v >> 18) & 63];
    out += table[(v >> 12) & 63];
    out += i + 1 < data.size() ? table[(v >> 6) & 63] : '=';
    out += i + 2 < data.size() ? table[v & 63] : '=';
  }
  return out;
}

inline std::string png_data_uri(int width, int height, int seed = 0) {
  return "data:image/png;base64," + base64(make_png(width, height, seed));
}

// GPT-2 byte-level alphabet: the vocab string of the single-byte token for byte b.
inline std::string byte_token_string(uint8_t b) {
  int n = 0;
  for (int c = 0; c < 256; ++c) {
    bool printable = (c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF);
    int code = printable ? c : 256 + n++;
    if (c == b) {
      std::string s;
      if (code < 0x80) {
        s += char(code);
      } else {
        s += char(0xC0 | (code >> 6));
        s += char(0x80 | (code & 0x3F));
      }
      return s;
    }
  }
  return {};
}

inline bool valid_utf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    }
    i += n;
  }
  return true;
}

}  // namespace autoglm::test
