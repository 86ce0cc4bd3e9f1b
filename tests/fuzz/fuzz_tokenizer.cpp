// tests/fuzz/fuzz_tokenizer.cpp: libFuzzer target for tokenizer.json loading, encoding and decoding (src/tokenizer).
// Two input shapes (fuzz_common.h):
//  - "<tokenizer.json>\n%%%%\n<text>": loads the JSON (any pipeline the loader accepts: normalizers, Split /
//    Metaspace / ByteLevel pre-tokenizers, decoders, post-processors, added tokens) and encodes/decodes the text.
//  - "<text>": encodes with the demo model's real tokenizer (tests/fixtures/tiny_glm4v) and decodes the input
//    bytes as token ids, as /detokenize and the streaming decoder would with ids a client chose.
// Oracles besides "no crash, only autoglm::error": ids stay in [0, vocab_size); the incremental decoder emits only
// valid UTF-8; for the real (byte-level) tokenizer, decode(encode(text)) == text and the streamed pieces add up to
// decode(ids).
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "fuzz_common.h"
#include "tokenizer/bpe.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace {

using autoglm::tokenizer;

const tokenizer& demo_tokenizer() {
  static std::unique_ptr<tokenizer> t = [] {
    try {
      return tokenizer::load(AUTOGLM_SOURCE_DIR "/tests/fixtures/tiny_glm4v/tokenizer.json");
    } catch (const std::exception& e) {
      std::fprintf(stderr, "fuzz_tokenizer: cannot load the demo tokenizer: %s\n", e.what());
      std::abort();
    }
  }();
  return *t;
}

// Streaming re-decodes a window per id (about 8x the work of decode()): the streaming checks use at most this
// many ids, which keeps long inputs fast without losing what the window logic can get wrong.
constexpr size_t max_streamed_ids = 256;

std::vector<int32_t> stream_prefix(const std::vector<int32_t>& ids) {
  return {ids.begin(), ids.begin() + std::min(ids.size(), max_streamed_ids)};
}

// Streams ids through incremental_decoder; every piece must be valid UTF-8. Returns the concatenation.
std::string stream_decode(const tokenizer& tok, const std::vector<int32_t>& ids, bool skip_special) {
  FUZZ_CHECK(ids.size() <= max_streamed_ids);
  autoglm::incremental_decoder dec(tok, skip_special);
  std::string all;
  for (int32_t id : ids) {
    std::string piece = dec.push(id);
    FUZZ_CHECK(autoglm::utf8::is_valid(piece), "incremental_decoder::push emitted invalid UTF-8");
    all += piece;
  }
  std::string tail = dec.flush();
  FUZZ_CHECK(autoglm::utf8::is_valid(tail), "incremental_decoder::flush emitted invalid UTF-8");
  return all + tail;
}

void check_ids(const tokenizer& tok, const std::vector<int32_t>& ids) {
  for (int32_t id : ids) FUZZ_CHECK(id >= 0 && id < tok.vocab_size(), "id " + std::to_string(id) + " outside the vocabulary");
}

// A post-processor may insert special-token ids the vocabulary does not hold (HF allows it; the engine rejects
// prompt ids beyond the model's vocabulary), but never negative or absurd ones.
void check_post_processed(const std::vector<int32_t>& ids) {
  for (int32_t id : ids) FUZZ_CHECK(id >= 0 && id <= autoglm::tok::max_token_id, "post-processor id " + std::to_string(id));
}

// Encodes and decodes `text` with any tokenizer; only properties every pipeline has are checked.
void exercise(const tokenizer& tok, std::string_view text) {
  for (bool parse_special : {true, false}) {
    std::vector<int32_t> ids;
    try {
      ids = tok.encode(text, parse_special);
    } catch (const autoglm::error&) {
      continue;  // e.g. invalid UTF-8
    }
    check_ids(tok, ids);
    check_post_processed(tok.encode_with_post_processor(text, parse_special));
    for (bool skip : {true, false}) {
      std::string text_out = tok.decode(ids, skip);
      FUZZ_CHECK(autoglm::utf8::is_valid(text_out), "decode returned invalid UTF-8");
      stream_decode(tok, stream_prefix(ids), skip);
    }
    for (size_t k = 0; k < ids.size() && k < 64; ++k) {
      std::string piece = tok.id_to_token(ids[k]);
      tok.is_special(ids[k]);
      if (!piece.empty()) tok.token_to_id(piece);
    }
  }
}

void fuzz_demo_tokenizer(std::string_view text) {
  const tokenizer& tok = demo_tokenizer();
  if (autoglm::utf8::is_valid(text)) {
    // Byte-level BPE without a normalizer loses nothing: the text comes back exactly, special tokens included.
    for (bool parse_special : {true, false}) {
      std::vector<int32_t> ids = tok.encode(text, parse_special);
      check_ids(tok, ids);
      FUZZ_CHECK(tok.decode(ids, false) == text, "round trip (parse_special=" + std::to_string(parse_special) + ")");
      FUZZ_CHECK(autoglm::utf8::is_valid(tok.decode(ids, true)), "decode returned invalid UTF-8");
      std::vector<int32_t> head = stream_prefix(ids);
      FUZZ_CHECK(stream_decode(tok, head, false) == tok.decode(head, false), "streamed text differs from decode()");
      FUZZ_CHECK(stream_decode(tok, head, true) == tok.decode(head, true), "streamed text differs from decode(skip_special)");
    }
    check_post_processed(tok.encode_with_post_processor(text, true));
  } else {
    exercise(tok, text);  // must be rejected with an autoglm::error
  }
  // The same bytes as ids a client could send to /detokenize: raw (mostly far out of range) and folded into
  // the vocabulary (plus a few ids either side of it).
  std::vector<int32_t> raw(text.size() / 4), folded(text.size() / 4);
  if (!raw.empty()) std::memcpy(raw.data(), text.data(), raw.size() * 4);
  const int64_t span = int64_t(tok.vocab_size()) + 8;
  for (size_t k = 0; k < raw.size(); ++k) folded[k] = int32_t(int64_t(uint32_t(raw[k]) % uint64_t(span)) - 4);
  FUZZ_CHECK(autoglm::utf8::is_valid(tok.decode(raw, false)), "decode of arbitrary ids returned invalid UTF-8");
  std::vector<int32_t> head = stream_prefix(folded);
  for (bool skip : {true, false}) {
    FUZZ_CHECK(autoglm::utf8::is_valid(tok.decode(folded, skip)), "decode of arbitrary ids returned invalid UTF-8");
    FUZZ_CHECK(stream_decode(tok, head, skip) == tok.decode(head, skip), "streamed text differs from decode() for arbitrary ids");
  }
}

void fuzz_loaded_tokenizer(std::string_view json_text, std::string_view text) {
  std::unique_ptr<tokenizer> tok;
  try {
    tok = tokenizer::from_json(std::string(json_text), "fuzz/tokenizer.json");
  } catch (const autoglm::error&) {
    return;
  }
  FUZZ_CHECK(tok->vocab_size() >= 0);
  exercise(*tok, text);
  exercise(*tok, "Hello world!  <|user|>\n1234 ▁x 你好");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto parts = autoglm::fuzz::split_input(data, size);
  if (parts.has_second) fuzz_loaded_tokenizer(parts.first, parts.second);
  else fuzz_demo_tokenizer(parts.first);
  return 0;
}
