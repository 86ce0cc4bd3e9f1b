// unicode.h: UTF-8 helpers, Unicode normalization (NFC/NFD/NFKC/NFKD), lowercase, and the GPT-2 byte-level
// alphabet used by the tokenizer. Data tables live in unicode_tables.cpp (generated).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace autoglm::unicode_data {
extern const uint32_t ccc_ranges[];
extern const size_t n_ccc_ranges;
extern const uint32_t decomp_index[];
extern const size_t n_decomp;
extern const uint32_t decomp_data[];
extern const uint32_t comp_pairs[];
extern const size_t n_comp;
extern const uint32_t lower_index[];
extern const size_t n_lower;
extern const uint32_t lower_data[];
}  // namespace autoglm::unicode_data

namespace autoglm::utf8 {

// Length of the UTF-8 sequence starting with byte b (1 for invalid lead bytes).
inline int seq_len(unsigned char b) {
  if (b < 0x80) return 1;
  if ((b & 0xE0) == 0xC0) return 2;
  if ((b & 0xF0) == 0xE0) return 3;
  if ((b & 0xF8) == 0xF0) return 4;
  return 1;
}

// Decodes the code point at s[i] (s must be valid UTF-8) and advances i.
inline uint32_t next(std::string_view s, size_t& i) {
  unsigned char b = static_cast<unsigned char>(s[i]);
  int n = seq_len(b);
  uint32_t cp = n == 1 ? b : (b & (0x7F >> n));
  for (int k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
  i += n;
  return cp;
}

void append(std::string& out, uint32_t cp);

// Length of the longest valid UTF-8 prefix of s.
size_t valid_prefix(std::string_view s);
inline bool is_valid(std::string_view s) { return valid_prefix(s) == s.size(); }

// Like Rust's String::from_utf8_lossy: each maximal invalid subpart becomes U+FFFD.
std::string lossy(std::string_view s);

// Number of trailing bytes of s that form an incomplete (but so far valid) multi-byte sequence, 0 if none.
size_t incomplete_tail(std::string_view s);

}  // namespace autoglm::utf8

namespace autoglm::unicode {

enum class norm_form { nfc, nfd, nfkc, nfkd };
std::string normalize(std::string_view s, norm_form form);
std::string lowercase(std::string_view s);
// Rust char::is_whitespace (Unicode White_Space).
bool is_whitespace(uint32_t cp);

// GPT-2 byte-level alphabet: byte -> code point and back (-1 when the code point is not in the alphabet).
uint32_t byte_to_cp(uint8_t b);
int cp_to_byte(uint32_t cp);

}  // namespace autoglm::unicode
