// unicode.cpp: UTF-8 helpers, normalization forms and lowercase over the generated tables.
#include "tokenizer/unicode.h"

#include <algorithm>
#include <array>
#include <vector>

namespace autoglm::utf8 {

void append(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

namespace {
// Length of the valid sequence at s[i], or -(number of bytes forming the maximal invalid subpart) (WHATWG/Rust).
// Returns 0 if s[i..] is a valid but truncated sequence.
int check_seq(std::string_view s, size_t i) {
  auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = b(i);
  if (c < 0x80) return 1;
  int n;
  unsigned char lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return -1;
  }
  for (int k = 1; k < n; ++k) {
    if (i + k >= s.size()) return 0;
    unsigned char t = b(i + k);
    if (k == 1 ? (t < lo || t > hi) : (t < 0x80 || t > 0xBF)) return -k;
  }
  return n;
}
}  // namespace

size_t valid_prefix(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    int r = check_seq(s, i);
    if (r <= 0) return i;
    i += r;
  }
  return i;
}

std::string lossy(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    int r = check_seq(s, i);
    if (r > 0) {
      out.append(s.substr(i, r));
      i += r;
    } else {
      out.append("\xEF\xBF\xBD");
      i += r == 0 ? s.size() - i : -r;
    }
  }
  return out;
}

size_t incomplete_tail(std::string_view s) {
  size_t n = s.size();
  for (size_t k = 1; k <= 3 && k <= n; ++k) {
    unsigned char c = static_cast<unsigned char>(s[n - k]);
    if ((c & 0xC0) == 0x80) continue;
    if (c < 0x80) return 0;
    return check_seq(s, n - k) == 0 ? k : 0;
  }
  return 0;
}

}  // namespace autoglm::utf8

namespace autoglm::unicode {

namespace ud = autoglm::unicode_data;

namespace {
constexpr uint32_t s_base = 0xAC00, l_base = 0x1100, v_base = 0x1161, t_base = 0x11A7;
constexpr uint32_t l_count = 19, v_count = 21, t_count = 28, n_count = v_count * t_count, s_count = l_count * n_count;

int ccc(uint32_t cp) {
  if (cp < 0x300) return 0;
  size_t lo = 0, hi = ud::n_ccc_ranges;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (ud::ccc_ranges[mid * 3 + 1] < cp) lo = mid + 1;
    else hi = mid;
  }
  if (lo < ud::n_ccc_ranges && ud::ccc_ranges[lo * 3] <= cp) return static_cast<int>(ud::ccc_ranges[lo * 3 + 2]);
  return 0;
}

const uint32_t* find_pair_index(const uint32_t* index, size_t n, uint32_t cp) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (index[mid * 2] < cp) lo = mid + 1;
    else hi = mid;
  }
  return lo < n && index[lo * 2] == cp ? &index[lo * 2] : nullptr;
}

void decompose(uint32_t cp, bool compat, std::vector<uint32_t>& out) {
  if (cp >= s_base && cp < s_base + s_count) {
    uint32_t s = cp - s_base;
    out.push_back(l_base + s / n_count);
    out.push_back(v_base + (s % n_count) / t_count);
    if (s % t_count) out.push_back(t_base + s % t_count);
    return;
  }
  const uint32_t* e = cp < 0xA0 ? nullptr : find_pair_index(ud::decomp_index, ud::n_decomp, cp);
  if (!e || ((e[1] >> 31) && !compat)) {
    out.push_back(cp);
    return;
  }
  uint32_t off = e[1] & 0xFFFFFF, len = (e[1] >> 24) & 0x7F;
  for (uint32_t k = 0; k < len; ++k) decompose(ud::decomp_data[off + k], compat, out);
}

uint32_t compose_pair(uint32_t a, uint32_t b) {
  if (a >= l_base && a < l_base + l_count && b >= v_base && b < v_base + v_count)
    return s_base + ((a - l_base) * v_count + (b - v_base)) * t_count;
  if (a >= s_base && a < s_base + s_count && (a - s_base) % t_count == 0 && b > t_base && b < t_base + t_count)
    return a + (b - t_base);
  size_t lo = 0, hi = ud::n_comp;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    const uint32_t* p = &ud::comp_pairs[mid * 3];
    if (p[0] < a || (p[0] == a && p[1] < b)) lo = mid + 1;
    else hi = mid;
  }
  if (lo < ud::n_comp && ud::comp_pairs[lo * 3] == a && ud::comp_pairs[lo * 3 + 1] == b)
    return ud::comp_pairs[lo * 3 + 2];
  return 0;
}
}  // namespace

// Code points that can change under NFC or make a neighbour change: non-starters, canonically decomposable
// characters (precomposed Hangul excepted: it recomposes to itself) and second elements of compositions.
// A string without any of them is already NFC.
const std::vector<uint64_t>& nfc_unstable() {
  static const std::vector<uint64_t> bits = [] {
    std::vector<uint64_t> b(0x110000 / 64, 0);
    auto set = [&](uint32_t cp) { b[cp >> 6] |= uint64_t{1} << (cp & 63); };
    for (size_t r = 0; r < ud::n_ccc_ranges; ++r)
      for (uint32_t cp = ud::ccc_ranges[r * 3]; cp <= ud::ccc_ranges[r * 3 + 1]; ++cp) set(cp);
    for (size_t k = 0; k < ud::n_decomp; ++k)
      if (!(ud::decomp_index[k * 2 + 1] >> 31)) set(ud::decomp_index[k * 2]);
    for (size_t k = 0; k < ud::n_comp; ++k) set(ud::comp_pairs[k * 3 + 1]);
    for (uint32_t cp = v_base; cp < v_base + v_count; ++cp) set(cp);
    for (uint32_t cp = t_base + 1; cp < t_base + t_count; ++cp) set(cp);
    return b;
  }();
  return bits;
}

std::string normalize(std::string_view s, norm_form form) {
  if (form == norm_form::nfc) {
    const auto& unstable = nfc_unstable();
    bool stable = true;
    for (size_t i = 0; i < s.size() && stable;) {
      if (static_cast<unsigned char>(s[i]) < 0x80) {
        ++i;
        continue;
      }
      uint32_t cp = utf8::next(s, i);
      stable = !((unstable[cp >> 6] >> (cp & 63)) & 1);
    }
    if (stable) return std::string(s);
  }
  // Fast path: code points below U+0300 are NFC-stable and those below U+00C0 NFD-stable; the compatibility
  // forms change some of them (e.g. U+00A0, U+00B5) and always take the full path.
  bool compat = form == norm_form::nfkc || form == norm_form::nfkd;
  const uint32_t stable_below = form == norm_form::nfc ? 0x300 : 0xC0;
  size_t i = 0;
  if (!compat) {
    while (i < s.size()) {
      unsigned char c = static_cast<unsigned char>(s[i]);
      if (c < 0x80) {
        ++i;
        continue;
      }
      size_t j = i;
      if (utf8::next(s, j) >= stable_below) break;
      i = j;
    }
    if (i == s.size()) return std::string(s);
  }
  std::vector<uint32_t> cps;
  cps.reserve(s.size());
  for (size_t k = 0; k < s.size();) decompose(utf8::next(s, k), compat, cps);
  // Canonical ordering: stable sort of each run of non-starters by combining class.
  for (size_t a = 0; a < cps.size();) {
    if (ccc(cps[a]) == 0) {
      ++a;
      continue;
    }
    size_t b = a;
    while (b < cps.size() && ccc(cps[b]) != 0) ++b;
    std::stable_sort(cps.begin() + a, cps.begin() + b, [](uint32_t x, uint32_t y) { return ccc(x) < ccc(y); });
    a = b;
  }
  if (form == norm_form::nfc || form == norm_form::nfkc) {
    std::vector<uint32_t> out;
    out.reserve(cps.size());
    size_t starter = SIZE_MAX;
    int last_ccc = -1;
    for (uint32_t cp : cps) {
      int c = ccc(cp);
      if (starter != SIZE_MAX && (last_ccc < c || (last_ccc == 0 && out.size() == starter + 1))) {
        if (uint32_t comp = compose_pair(out[starter], cp)) {
          out[starter] = comp;
          continue;
        }
      }
      if (c == 0) {
        starter = out.size();
        last_ccc = 0;
      } else {
        last_ccc = c;
      }
      out.push_back(cp);
      if (c == 0) last_ccc = 0;
    }
    cps.swap(out);
  }
  std::string r;
  r.reserve(s.size());
  for (uint32_t cp : cps) utf8::append(r, cp);
  return r;
}

std::string lowercase(std::string_view s) {
  std::string r;
  r.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      r.push_back(static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c));
      ++i;
      continue;
    }
    uint32_t cp = utf8::next(s, i);
    const uint32_t* e = find_pair_index(ud::lower_index, ud::n_lower, cp);
    if (!e) {
      utf8::append(r, cp);
      continue;
    }
    uint32_t off = e[1] & 0xFFFFFF, len = e[1] >> 24;
    for (uint32_t k = 0; k < len; ++k) utf8::append(r, ud::lower_data[off + k]);
  }
  return r;
}

bool is_whitespace(uint32_t cp) {
  return (cp >= 0x9 && cp <= 0xD) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
         cp == 0x3000;
}

namespace {
struct byte_tables {
  std::array<uint32_t, 256> to_cp{};
  std::array<int16_t, 512> from_cp{};
  byte_tables() {
    from_cp.fill(-1);
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      to_cp[b] = printable ? b : 256 + n++;
      from_cp[to_cp[b]] = static_cast<int16_t>(b);
    }
  }
};
const byte_tables& tables() {
  static const byte_tables t;
  return t;
}
}  // namespace

uint32_t byte_to_cp(uint8_t b) { return tables().to_cp[b]; }
int cp_to_byte(uint32_t cp) { return cp < 512 ? tables().from_cp[cp] : -1; }

}  // namespace autoglm::unicode
