// media/base64.cpp: strict base64 (standard and url-safe alphabets), data-URI parsing and the image content hash.
#include <array>
#include <cctype>
#include <cstdio>
#include <string>

#include "core/error.h"
#include "media/image.h"

namespace autoglm {

namespace {

constexpr int8_t k_invalid = -1;

// Value of each base64 digit in either alphabet ('+' '/' standard, '-' '_' url-safe).
constexpr std::array<int8_t, 256> make_table() {
  std::array<int8_t, 256> t{};
  for (auto& v : t) v = k_invalid;
  for (int i = 0; i < 26; ++i) {
    t['A' + i] = static_cast<int8_t>(i);
    t['a' + i] = static_cast<int8_t>(26 + i);
  }
  for (int i = 0; i < 10; ++i) t['0' + i] = static_cast<int8_t>(52 + i);
  t['+'] = 62;
  t['-'] = 62;
  t['/'] = 63;
  t['_'] = 63;
  return t;
}
constexpr auto k_table = make_table();

bool is_ws(unsigned char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v'; }

std::string printable(unsigned char c) {
  if (c >= 0x20 && c < 0x7f) return std::string("'") + static_cast<char>(c) + "'";
  char buf[8];
  std::snprintf(buf, sizeof buf, "0x%02x", c);
  return buf;
}

}  // namespace

std::string base64_encode(const uint8_t* data, size_t size) {
  static const char* table = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((size + 2) / 3 * 4);
  for (size_t i = 0; i < size; i += 3) {
    uint32_t v = uint32_t(data[i]) << 16;
    if (i + 1 < size) v |= uint32_t(data[i + 1]) << 8;
    if (i + 2 < size) v |= data[i + 2];
    out += table[(v >> 18) & 63];
    out += table[(v >> 12) & 63];
    out += i + 1 < size ? table[(v >> 6) & 63] : '=';
    out += i + 2 < size ? table[v & 63] : '=';
  }
  return out;
}

std::vector<uint8_t> base64_decode(std::string_view text) {
  std::vector<uint8_t> out;
  out.reserve(text.size() / 4 * 3 + 3);
  uint32_t acc = 0;
  int n_bits = 0;
  size_t n_digits = 0, n_pad = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (is_ws(c)) continue;
    if (c == '=') {
      ++n_pad;
      continue;
    }
    const int8_t v = k_table[c];
    if (v == k_invalid) throw error("base64: invalid character " + printable(c) + " at offset " + std::to_string(i));
    if (n_pad) throw error("base64: data after '=' padding at offset " + std::to_string(i));
    ++n_digits;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    n_bits += 6;
    if (n_bits >= 8) {
      n_bits -= 8;
      out.push_back(static_cast<uint8_t>(acc >> n_bits));
      acc &= (1u << n_bits) - 1;
    }
  }
  if (n_digits % 4 == 1) throw error("base64: truncated input (" + std::to_string(n_digits) + " digits)");
  if (n_pad) {
    if (n_pad > 2 || (n_digits + n_pad) % 4 != 0)
      throw error("base64: wrong padding (" + std::to_string(n_pad) + " '=' after " + std::to_string(n_digits) +
                  " digits)");
  }
  return out;
}

size_t base64_decoded_size(std::string_view text) {
  size_t n_digits = 0;
  for (unsigned char c : text) n_digits += k_table[c] != k_invalid;
  return n_digits / 4 * 3 + (n_digits % 4 >= 2 ? n_digits % 4 - 1 : 0);
}

namespace {

// Refuses a payload over the limit before base64_decode allocates its output: the length alone settles most
// cases, the exact count (whitespace does not decode) only those near the limit.
std::vector<uint8_t> decode_bounded(std::string_view payload, size_t max_bytes, const char* what) {
  if (payload.size() / 4 * 3 > max_bytes) {
    const size_t n = base64_decoded_size(payload);
    if (n > max_bytes)
      throw error(std::string(what) + ": the image is " + std::to_string(n) + " bytes, over the limit of " +
                  std::to_string(max_bytes));
  }
  auto bytes = base64_decode(payload);
  if (bytes.empty()) throw error(std::string(what) + ": base64 payload is empty");
  return bytes;
}

}  // namespace

std::vector<uint8_t> decode_image_reference(std::string_view ref, size_t max_bytes) {
  while (!ref.empty() && is_ws(static_cast<unsigned char>(ref.front()))) ref.remove_prefix(1);
  while (!ref.empty() && is_ws(static_cast<unsigned char>(ref.back()))) ref.remove_suffix(1);
  if (ref.empty()) throw error("image reference is empty");
  auto lower_starts = [&](std::string_view s, std::string_view prefix) {
    if (s.size() < prefix.size()) return false;
    for (size_t i = 0; i < prefix.size(); ++i)
      if (std::tolower(static_cast<unsigned char>(s[i])) != prefix[i]) return false;
    return true;
  };
  if (!lower_starts(ref, "data:")) {
    if (lower_starts(ref, "http://") || lower_starts(ref, "https://") || lower_starts(ref, "file:"))
      throw error("image reference: URLs are not fetched; send a data:image/...;base64 URI or base64 data");
    return decode_bounded(ref, max_bytes, "image reference");
  }
  const size_t comma = ref.find(',');
  if (comma == std::string_view::npos) throw error("data URI: missing ',' before the payload");
  std::string_view header = ref.substr(5, comma - 5);  // "<mediatype>[;param=value]*[;base64]"
  const std::string_view payload = ref.substr(comma + 1);
  bool is_base64 = false;
  std::string media_type;
  size_t pos = 0;
  for (int field = 0; pos <= header.size(); ++field) {
    size_t semi = header.find(';', pos);
    if (semi == std::string_view::npos) semi = header.size();
    std::string part(header.substr(pos, semi - pos));
    for (auto& ch : part) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    if (field == 0) {
      media_type = part;
    } else if (part == "base64") {
      if (semi != header.size()) throw error("data URI: ';base64' must be the last parameter");
      is_base64 = true;
    }
    pos = semi + 1;
  }
  if (media_type.rfind("image/", 0) != 0)
    throw error("data URI: media type must be image/*, got '" + media_type + "'");
  if (!is_base64) throw error("data URI: only ';base64' payloads are supported");
  return decode_bounded(payload, max_bytes, "data URI");
}

uint64_t hash_image(const image_rgb8& img) {
  uint64_t h = 0xcbf29ce484222325ull;
  auto mix = [&h](uint8_t b) {
    h ^= b;
    h *= 0x100000001b3ull;
  };
  for (int32_t v : {img.width, img.height})
    for (int s = 0; s < 32; s += 8) mix(static_cast<uint8_t>(static_cast<uint32_t>(v) >> s));
  for (uint8_t b : img.rgb) mix(b);
  return h;
}

}  // namespace autoglm
