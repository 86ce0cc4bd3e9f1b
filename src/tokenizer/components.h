// components.h: the pipeline stages of a HF tokenizer.json (normalizer, pre-tokenizer, decoder, post-processor),
// each parsed from its JSON node. Stages throw autoglm::error naming the unsupported/malformed node.
#pragma once

#include <cstddef>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace autoglm::tok {

// ---- normalizers: string -> string --------------------------------------------------------------------------
class normalizer {
 public:
  virtual ~normalizer() = default;
  virtual std::string apply(std::string_view s) const = 0;
};
// `where` names the file/field for error messages. Returns nullptr for a JSON null.
std::unique_ptr<normalizer> parse_normalizer(const nlohmann::json& j, const std::string& where);

// ---- pre-tokenizers: split text into words ------------------------------------------------------------------
struct piece {
  std::string_view text;  // into the input text or into the arena
  bool at_start = false;  // begins at offset 0 of the whole input (Metaspace prepend_scheme "first")
};
// Storage for pieces a step rewrote (deque: element addresses, hence the views, stay valid).
using piece_arena = std::deque<std::string>;
class pre_tokenizer {
 public:
  static constexpr size_t npos = static_cast<size_t>(-1);
  virtual ~pre_tokenizer() = default;
  virtual void apply(std::vector<piece>& pieces, piece_arena& arena) const = 0;
  // Pre-tokenizes a long text window by window, so encoding can stop once enough tokens are known without
  // splitting the rest. Looks only at text[0, end) (more text follows unless end == text.size()) and appends the
  // pieces of text[from, next) that apply() on the whole text would also produce, whatever follows `end`;
  // returns `next`, where the following call starts (a piece boundary; == from when the window holds no whole
  // piece: call again with a larger window; == text.size() once done). `from` must be 0 or a returned `next`.
  // `at_start`: text begins the whole input (piece::at_start). npos: this step cannot work in windows (the
  // caller applies it to the whole text).
  virtual size_t apply_window(std::string_view text, size_t from, size_t end, bool at_start,
                              std::vector<piece>& out, piece_arena& arena) const {
    (void)text, (void)from, (void)end, (void)at_start, (void)out, (void)arena;
    return npos;
  }
};
// byte_level_last is set when the last step is ByteLevel: that step then leaves the text as raw bytes and the BPE
// model maps bytes to the byte-level alphabet itself (fast path). Otherwise ByteLevel maps in place.
std::unique_ptr<pre_tokenizer> parse_pre_tokenizer(const nlohmann::json& j, const std::string& where,
                                                   bool& byte_level_last);
// Maps raw bytes to GPT-2 byte-level characters (UTF-8).
std::string byte_level_map(std::string_view raw);

// ---- decoders: token strings -> text ------------------------------------------------------------------------
class decoder {
 public:
  virtual ~decoder() = default;
  // Transforms the token list in place (HF decode_chain). With raw=true, byte-producing steps keep invalid UTF-8
  // bytes as they are (for streaming) instead of substituting U+FFFD.
  virtual void apply(std::vector<std::string>& tokens, bool raw) const = 0;
};
std::unique_ptr<decoder> parse_decoder(const nlohmann::json& j, const std::string& where);

// ---- post-processors: add template special tokens -----------------------------------------------------------
class post_processor {
 public:
  virtual ~post_processor() = default;
  virtual void apply(std::vector<int32_t>& ids) const = 0;
};
std::unique_ptr<post_processor> parse_post_processor(const nlohmann::json& j, const std::string& where);

}  // namespace autoglm::tok
