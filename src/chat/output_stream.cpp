// chat/output_stream.cpp: detokenize, stop strings, reasoning split (see output_stream.h for the semantics).
#include "chat/output_stream.h"

#include <algorithm>
#include <string_view>

#include "tokenizer/tokenizer.h"

namespace autoglm {

namespace {

constexpr std::string_view think_start_text = "<think>";
constexpr std::string_view think_end_text = "</think>";

// Length of the longest suffix of `text` that is a proper prefix of `pattern`.
size_t partial_suffix(std::string_view text, std::string_view pattern) {
  size_t best = 0;
  size_t max_k = std::min(text.size(), pattern.empty() ? 0 : pattern.size() - 1);
  for (size_t k = 1; k <= max_k; ++k) {
    if (text.substr(text.size() - k) == pattern.substr(0, k)) best = k;
  }
  return best;
}

}  // namespace

output_stream::output_stream(const tokenizer& tok, output_options options)
    : tok_(tok), options_(std::move(options)) {
  options_.stop.erase(std::remove_if(options_.stop.begin(), options_.stop.end(),
                                     [](const std::string& s) { return s.empty(); }),
                      options_.stop.end());
  decoder_ = std::make_unique<incremental_decoder>(tok_, options_.skip_special_tokens);
  if (options_.split_reasoning) {
    auto start = tok_.token_to_id(think_start_text);
    auto end = tok_.token_to_id(think_end_text);
    // Id mode only when both tags are single tokens; otherwise both are found in the decoded text.
    if (start && end) {
      think_start_id_ = start;
      think_end_id_ = end;
    }
  }
}

output_stream::~output_stream() = default;

output_delta output_stream::push(int32_t token) {
  output_delta out;
  if (stopped_ || finished_) return out;
  if (think_start_id_ && (token == *think_start_id_ || token == *think_end_id_)) {
    bool is_start = token == *think_start_id_;
    bool visible = !(options_.skip_special_tokens && tok_.is_special(token));
    std::string tag = visible ? std::string(is_start ? think_start_text : think_end_text) : std::string();
    pending_.push_back({raw_.size(), is_start, std::move(tag)});
  } else {
    append_text(decoder_->push(token), out);
  }
  if (stopped_) {
    release(raw_.size(), out);
    flush_tag_hold(out);
  } else {
    release(raw_.size() - stop_holdback(), out);
  }
  return out;
}

output_delta output_stream::finish() {
  output_delta out;
  if (finished_) return out;
  finished_ = true;
  if (stopped_) return out;  // everything was released when the stop string matched
  append_text(decoder_->flush(), out);
  release(raw_.size(), out);
  flush_tag_hold(out);
  return out;
}

void output_stream::append_text(const std::string& text, output_delta& out) {
  if (text.empty()) return;
  size_t old_size = raw_.size();
  raw_ += text;
  // Earliest match that ends inside the new text (matches ending earlier were found on earlier pushes).
  size_t best_pos = std::string::npos;
  const std::string* best = nullptr;
  for (const std::string& s : options_.stop) {
    size_t from = old_size >= s.size() - 1 ? old_size - (s.size() - 1) : 0;
    from = std::max(from, released_);
    size_t pos = raw_.find(s, from);
    if (pos != std::string::npos && pos < best_pos) {
      best_pos = pos;
      best = &s;
    }
  }
  if (!best) return;
  stopped_ = true;
  out.stop_matched = true;
  out.matched_stop = *best;
  raw_.resize(options_.include_stop_str_in_output ? best_pos + best->size() : best_pos);
  // Tags that came after the cut are part of the discarded text.
  std::erase_if(pending_, [&](const pending_tag& p) { return p.offset > raw_.size(); });
}

size_t output_stream::stop_holdback() const {
  std::string_view unreleased = std::string_view(raw_).substr(released_);
  size_t hold = 0;
  for (const std::string& s : options_.stop) hold = std::max(hold, partial_suffix(unreleased, s));
  return hold;
}

void output_stream::release(size_t upto, output_delta& out) {
  size_t pos = released_;
  for (;;) {
    while (!pending_.empty() && pending_.front().offset <= pos) {
      on_tag(pending_.front().is_start, pending_.front().visible_text);
      pending_.erase(pending_.begin());
    }
    if (pos >= upto) break;
    size_t next = upto;
    if (!pending_.empty()) next = std::min(next, pending_.front().offset);
    feed_text(std::string_view(raw_).substr(pos, next - pos), out);
    pos = next;
  }
  released_ = std::max(released_, upto);
}

void output_stream::on_tag(bool is_start, std::string_view visible_text) {
  all_ += visible_text;
  if (is_start) {
    if (!seen_start_) all_after_start_ = all_.size();
    seen_start_ = true;
    region_ = seen_end_ ? region::POST : region::REASONING;
  } else {
    if (seen_start_ && !all_end_) all_end_ = {all_.size() - visible_text.size(), all_.size()};
    seen_end_ = true;
    if (seen_start_) region_ = region::POST;
  }
}

void output_stream::feed_text(std::string_view text, output_delta& out) {
  if (text.empty()) return;
  if (!options_.split_reasoning || think_start_id_) {
    emit(text, out);
    return;
  }
  // Text mode: the tags arrive as ordinary text, possibly split over several tokens.
  std::string buf = std::move(text_tag_hold_);
  text_tag_hold_.clear();
  buf.append(text);
  std::string_view rest = buf;
  for (;;) {
    bool want_start = region_ == region::PRE;
    bool want_end = region_ != region::POST;
    size_t start_pos = want_start ? rest.find(think_start_text) : std::string_view::npos;
    size_t end_pos = want_end ? rest.find(think_end_text) : std::string_view::npos;
    if (start_pos == std::string_view::npos && end_pos == std::string_view::npos) {
      size_t hold = 0;
      if (want_start) hold = std::max(hold, partial_suffix(rest, think_start_text));
      if (want_end) hold = std::max(hold, partial_suffix(rest, think_end_text));
      emit(rest.substr(0, rest.size() - hold), out);
      text_tag_hold_ = std::string(rest.substr(rest.size() - hold));
      return;
    }
    bool is_start = start_pos < end_pos;
    size_t pos = is_start ? start_pos : end_pos;
    std::string_view tag = is_start ? think_start_text : think_end_text;
    emit(rest.substr(0, pos), out);
    on_tag(is_start, tag);
    rest = rest.substr(pos + tag.size());
  }
}

void output_stream::flush_tag_hold(output_delta& out) {
  std::string hold = std::move(text_tag_hold_);
  text_tag_hold_.clear();
  emit(hold, out);
}

void output_stream::emit(std::string_view text, output_delta& out) {
  if (text.empty()) return;
  all_ += text;
  if (options_.split_reasoning && region_ == region::REASONING) {
    out.reasoning += text;
  } else {
    out.content += text;
  }
}

output_message output_stream::final_message() const {
  output_message msg;
  if (!options_.split_reasoning || !seen_start_ || !seen_end_) {
    msg.content = all_ + text_tag_hold_;
    return msg;
  }
  // vLLM glm45 (non-streaming): drop up to and including the first <think>, split at the first </think>.
  if (all_end_) {
    msg.reasoning = all_.substr(all_after_start_, all_end_->first - all_after_start_);
    msg.content = all_.substr(all_end_->second) + text_tag_hold_;
  } else {
    msg.reasoning = all_.substr(all_after_start_) + text_tag_hold_;
  }
  return msg;
}

}  // namespace autoglm
