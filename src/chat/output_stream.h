// chat/output_stream.h: generated token ids -> OpenAI text deltas for one choice.
//
// Pipeline per token: reasoning-tag ids are intercepted (they are markers, never text) -> incremental
// detokenizer (never emits broken UTF-8, drops special tokens when skip_special_tokens) -> stop-string
// matcher on the whole decoded text (holds back the longest suffix that could still start a stop string,
// truncates at a match and never leaks it) -> reasoning splitter -> {content_delta, reasoning_delta}.
//
// Reasoning split follows vLLM's `glm45` parser (spec section 7):
//  - streaming (the deltas): text before <think> is content, between <think> and the first </think> is
//    reasoning, after </think> is content. The tags themselves are never emitted. Tags are detected by token
//    id when the tokenizer has them as single tokens (with skip_special_tokens they do not appear in the
//    decoded text at all); otherwise they are found in the decoded text, held back while only a prefix of
//    a tag has arrived.
//  - non-streaming (final_message()): if the output lacks either tag the whole text is content; otherwise
//    text up to and including <think> is dropped, reasoning = up to the first </think>, content = the rest.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace autoglm {

class tokenizer;
class incremental_decoder;

struct output_options {
  std::vector<std::string> stop = {};      // stop strings (empty strings are ignored)
  bool include_stop_str_in_output = false;  // vLLM extension: keep the matched stop string in the text
  bool skip_special_tokens = true;
  bool split_reasoning = false;             // route <think>...</think> to reasoning
};

struct output_delta {
  std::string content;
  std::string reasoning;
  bool stop_matched = false;   // a stop string matched in this push: the choice is finished ("stop")
  std::string matched_stop;    // which stop string
  bool empty() const { return content.empty() && reasoning.empty() && !stop_matched; }
};

// The whole output of a finished choice, split the way vLLM's non-streaming reasoning parser does.
struct output_message {
  std::string content;
  std::optional<std::string> reasoning;  // nullopt when not splitting or when a tag was missing
};

class output_stream {
 public:
  output_stream(const tokenizer& tok, output_options options);
  ~output_stream();
  output_stream(const output_stream&) = delete;
  output_stream& operator=(const output_stream&) = delete;

  // Feeds one generated token. After a stop string matched, further tokens are ignored.
  output_delta push(int32_t token);
  // Releases everything still held back (end of generation). Call once, after the last push.
  output_delta finish();

  bool stopped() const { return stopped_; }
  // Non-streaming view of everything released so far (complete after finish()).
  output_message final_message() const;
  // Decoded text after stop truncation, reasoning not split (reasoning tags detected by id are not in it).
  const std::string& text() const { return raw_; }

 private:
  enum class region { PRE, REASONING, POST };
  struct pending_tag {
    size_t offset;             // in raw_: the tag sits before this byte
    bool is_start;
    std::string visible_text;  // what the tag decodes to ("" when a skipped special token)
  };

  void append_text(const std::string& text, output_delta& out);  // stage 1: stop strings
  size_t stop_holdback() const;
  void release(size_t upto, output_delta& out);  // stage 2 over raw_[released_, upto)
  void feed_text(std::string_view text, output_delta& out);
  void on_tag(bool is_start, std::string_view visible_text);
  void flush_tag_hold(output_delta& out);
  void emit(std::string_view text, output_delta& out);

  const tokenizer& tok_;
  output_options options_;
  std::unique_ptr<incremental_decoder> decoder_;
  std::optional<int32_t> think_start_id_, think_end_id_;  // set: tags detected by id, else as text

  std::string raw_;       // decoded text (stop-truncated), without tag tokens intercepted by id
  size_t released_ = 0;   // raw_[0, released_) went through stage 2
  bool stopped_ = false;
  bool finished_ = false;
  std::vector<pending_tag> pending_;  // id-detected tags, applied when stage 2 reaches their offset

  // Stage 2: reasoning state.
  region region_ = region::PRE;
  bool seen_start_ = false, seen_end_ = false;
  std::string text_tag_hold_;  // text mode: a partial "<think>" / "</think>" held back
  std::string all_;            // everything released, tags included where visible
  size_t all_after_start_ = 0;                           // all_ offset just after the first <think>
  std::optional<std::pair<size_t, size_t>> all_end_;     // [begin, end) of the first </think> after it
};

}  // namespace autoglm
