// server/token_text.h: how one token reads in logprobs output: its text (best effort for a token holding part
// of a UTF-8 sequence) and its exact bytes, as OpenAI's logprobs objects carry both.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace autoglm {
class tokenizer;
}

namespace autoglm::server {

struct token_text {
  std::string text;           // valid UTF-8 (incomplete sequences replaced with U+FFFD)
  std::vector<uint8_t> bytes; // the raw bytes the token stands for
};

token_text describe_token(const tokenizer& tok, int32_t id);
std::string decode_tokens(const tokenizer& tok, const std::vector<int32_t>& ids, bool skip_special_tokens);
std::vector<int32_t> encode_text(const tokenizer& tok, const std::string& text, bool add_special_tokens);

}  // namespace autoglm::server
