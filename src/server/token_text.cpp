// server/token_text.cpp: token → text/bytes for logprobs, and plain encode/decode for /tokenize, /detokenize.
#include "server/token_text.h"

#include "tokenizer/tokenizer.h"

namespace autoglm::server {

namespace {

// Length of the valid UTF-8 sequence starting at s[i], or 0 if it is invalid or truncated.
size_t utf8_sequence(const std::string& s, size_t i) {
  auto b = uint8_t(s[i]);
  size_t n = b < 0x80 ? 1 : (b >> 5) == 0x6 ? 2 : (b >> 4) == 0xe ? 3 : (b >> 3) == 0x1e ? 4 : 0;
  if (n == 0 || i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k)
    if ((uint8_t(s[i + k]) & 0xc0) != 0x80) return 0;
  return n;
}

}  // namespace

token_text describe_token(const tokenizer& tok, int32_t id) {
  token_text t;
  std::string raw = tok.decode_raw(&id, 1, false);
  t.bytes.assign(raw.begin(), raw.end());
  for (size_t i = 0; i < raw.size();) {
    size_t n = utf8_sequence(raw, i);
    if (n == 0) {
      t.text += "\xef\xbf\xbd";  // U+FFFD
      ++i;
    } else {
      t.text.append(raw, i, n);
      i += n;
    }
  }
  return t;
}

std::string decode_tokens(const tokenizer& tok, const std::vector<int32_t>& ids, bool skip_special_tokens) {
  return tok.decode(ids, skip_special_tokens);
}

std::vector<int32_t> encode_text(const tokenizer& tok, const std::string& text, bool add_special_tokens) {
  return add_special_tokens ? tok.encode_with_post_processor(text) : tok.encode(text);
}

}  // namespace autoglm::server
