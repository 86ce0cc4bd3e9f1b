// tokenizer.h: HF tokenizer.json (byte-level BPE as GLM-4.1V ships it) — encode with added/special tokens,
// decode with skip_special_tokens, and an incremental decoder for streaming that never emits broken UTF-8.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace autoglm {

namespace tok {
struct tokenizer_impl;
}

// encode_bounded's result: the encoding when it has at most max_tokens ids; otherwise its first max_tokens ids
// and over_limit set (encoding stopped as soon as that was known).
struct bounded_encoding {
  std::vector<int32_t> ids;
  bool over_limit = false;
};

class tokenizer {
 public:
  // A directory holding tokenizer.json, or the file itself; throws autoglm::error naming the file and the problem.
  static std::unique_ptr<tokenizer> load(const std::string& path);
  // Same, from the JSON text; `name` is used in error messages.
  static std::unique_ptr<tokenizer> from_json(const std::string& json_text, const std::string& name);
  ~tokenizer();

  // add_special_tokens=false (no post-processor), like HF apply_chat_template/vLLM. parse_special=false treats
  // special added tokens in the text as plain text (HF encode_special_tokens=true); non-special added tokens still match.
  std::vector<int32_t> encode(std::string_view text, bool parse_special = true) const;
  std::vector<int32_t> encode_with_post_processor(std::string_view text, bool parse_special = true) const;
  // Same ids as encode / encode_with_post_processor up to max_tokens, but the work stops once the text is known
  // to have more: the cost depends on max_tokens, not on the text's length (beyond a UTF-8 check), for
  // pre-tokenizers that split text (Split, ByteLevel's regex, Digits, Whitespace*); Metaspace-only pipelines
  // are split whole and stop at the BPE step.
  bounded_encoding encode_bounded(std::string_view text, size_t max_tokens, bool parse_special = true) const;
  bounded_encoding encode_with_post_processor_bounded(std::string_view text, size_t max_tokens,
                                                      bool parse_special = true) const;
  std::string decode(const std::vector<int32_t>& ids, bool skip_special = true) const;
  // Like decode() but byte-producing decoders keep invalid UTF-8 bytes instead of U+FFFD (for streaming).
  std::string decode_raw(const int32_t* ids, size_t n, bool skip_special) const;

  std::optional<int32_t> token_to_id(std::string_view token) const;  // vocab or added token
  std::string id_to_token(int32_t id) const;                         // "" if unknown
  bool is_special(int32_t id) const;
  int32_t vocab_size() const;  // max id + 1

 private:
  tokenizer();
  std::unique_ptr<tok::tokenizer_impl> impl_;
};

class incremental_decoder {
 public:
  explicit incremental_decoder(const tokenizer& tok, bool skip_special = true);
  std::string push(int32_t id);  // returns the newly completed text (may be empty)
  std::string flush();           // whatever is held at the end

 private:
  const tokenizer& tok_;
  bool skip_special_;
  std::vector<int32_t> ids_;  // window of recent ids: [0, read_) already turned into text
  size_t read_ = 0;
  std::string window_text_;  // decode_raw(ids_[0, read_))
  std::string pending_;      // bytes decoded but not yet returned (an incomplete UTF-8 sequence)
};

}  // namespace autoglm
