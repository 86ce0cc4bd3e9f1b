// server/transcript_format.cpp: transcription -> response bodies (see transcript_format.h).
#include "server/transcript_format.h"

#include <zlib.h>

#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <vector>

#include "core/error.h"
#include "tokenizer/unicode.h"

namespace autoglm::server {

namespace {

// Whisper's languages (openai-whisper tokenizer.py, in its id order), code -> the name verbose_json reports.
constexpr std::pair<std::string_view, std::string_view> whisper_languages[] = {
    {"en", "english"},        {"zh", "chinese"},       {"de", "german"},    {"es", "spanish"},    {"ru", "russian"},
    {"ko", "korean"},         {"fr", "french"},        {"ja", "japanese"},  {"pt", "portuguese"}, {"tr", "turkish"},
    {"pl", "polish"},         {"ca", "catalan"},       {"nl", "dutch"},     {"ar", "arabic"},     {"sv", "swedish"},
    {"it", "italian"},        {"id", "indonesian"},    {"hi", "hindi"},     {"fi", "finnish"},    {"vi", "vietnamese"},
    {"he", "hebrew"},         {"uk", "ukrainian"},     {"el", "greek"},     {"ms", "malay"},      {"cs", "czech"},
    {"ro", "romanian"},       {"da", "danish"},        {"hu", "hungarian"}, {"ta", "tamil"},      {"no", "norwegian"},
    {"th", "thai"},           {"ur", "urdu"},          {"hr", "croatian"},  {"bg", "bulgarian"},  {"lt", "lithuanian"},
    {"la", "latin"},          {"mi", "maori"},         {"ml", "malayalam"}, {"cy", "welsh"},      {"sk", "slovak"},
    {"te", "telugu"},         {"fa", "persian"},       {"lv", "latvian"},   {"bn", "bengali"},    {"sr", "serbian"},
    {"az", "azerbaijani"},    {"sl", "slovenian"},     {"kn", "kannada"},   {"et", "estonian"},   {"mk", "macedonian"},
    {"br", "breton"},         {"eu", "basque"},        {"is", "icelandic"}, {"hy", "armenian"},   {"ne", "nepali"},
    {"mn", "mongolian"},      {"bs", "bosnian"},       {"kk", "kazakh"},    {"sq", "albanian"},   {"sw", "swahili"},
    {"gl", "galician"},       {"mr", "marathi"},       {"pa", "punjabi"},   {"si", "sinhala"},    {"km", "khmer"},
    {"sn", "shona"},          {"yo", "yoruba"},        {"so", "somali"},    {"af", "afrikaans"},  {"oc", "occitan"},
    {"ka", "georgian"},       {"be", "belarusian"},    {"tg", "tajik"},     {"sd", "sindhi"},     {"gu", "gujarati"},
    {"am", "amharic"},        {"yi", "yiddish"},       {"lo", "lao"},       {"uz", "uzbek"},      {"fo", "faroese"},
    {"ht", "haitian creole"}, {"ps", "pashto"},        {"tk", "turkmen"},   {"nn", "nynorsk"},    {"mt", "maltese"},
    {"sa", "sanskrit"},       {"lb", "luxembourgish"}, {"my", "myanmar"},   {"bo", "tibetan"},    {"tl", "tagalog"},
    {"mg", "malagasy"},       {"as", "assamese"},      {"tt", "tatar"},     {"haw", "hawaiian"},  {"ln", "lingala"},
    {"ha", "hausa"},          {"ba", "bashkir"},       {"jw", "javanese"},  {"su", "sundanese"},  {"yue", "cantonese"},
};

std::string trim(std::string_view s) {
  const size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos) return "";
  return std::string(s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1));
}

// Bodies are declared UTF-8, and byte-level tokens can end mid-character: every format turns each maximal invalid
// sequence into one U+FFFD (transformers' decode(errors="replace")), so json and text say the same.
// Cue text must not contain an empty line (it would end the cue in both formats) nor, in WebVTT, "-->".
std::string cue_text(std::string_view text) {
  std::string out;
  for (char c : trim(utf8::lossy(text))) {
    if (c == '\r') continue;
    if (c == '\n' && !out.empty() && out.back() == '\n') continue;
    out += c;
  }
  for (size_t p = out.find("-->"); p != std::string::npos; p = out.find("-->", p)) out.replace(p, 3, "->");
  return out;
}

nlohmann::ordered_json usage_of(const transcription& t) {
  // OpenAI bills whisper by whole seconds of input audio.
  return {{"type", "duration"}, {"seconds", int64_t(std::ceil(t.duration_s))}};
}

std::string subtitles(const transcription& t, bool vtt) {
  std::string out = vtt ? "WEBVTT\n\n" : "";
  int32_t n = 0;
  for (const transcription_segment& s : t.segments) {
    const std::string text = cue_text(s.text);
    if (text.empty()) continue;  // an empty cue is not valid SRT
    if (!vtt) out += std::to_string(++n) + "\n";
    out += subtitle_timestamp(s.start, vtt ? '.' : ',') + " --> " + subtitle_timestamp(s.end, vtt ? '.' : ',') + "\n" +
           text + "\n\n";
  }
  return out;
}

}  // namespace

transcript_format parse_transcript_format(std::string_view name) {
  if (name == "json") return transcript_format::JSON;
  if (name == "text") return transcript_format::TEXT;
  if (name == "verbose_json") return transcript_format::VERBOSE_JSON;
  if (name == "srt") return transcript_format::SRT;
  if (name == "vtt") return transcript_format::VTT;
  throw invalid_request("response_format must be one of json, text, verbose_json, srt, vtt; got '" +
                            std::string(name.substr(0, 64)) + "'",
                        "response_format");
}

bool transcript_needs_timestamps(transcript_format f) {
  return f == transcript_format::VERBOSE_JSON || f == transcript_format::SRT || f == transcript_format::VTT;
}

std::string whisper_language_name(std::string_view code) {
  for (const auto& [c, name] : whisper_languages)
    if (c == code) return std::string(name);
  return std::string(code);
}

std::string subtitle_timestamp(double seconds, char decimal_mark) {
  const int64_t ms = std::isfinite(seconds) && seconds > 0 ? std::llround(seconds * 1000.0) : 0;
  char buf[48];
  std::snprintf(buf, sizeof(buf), "%02lld:%02lld:%02lld%c%03lld", (long long)(ms / 3600000),
                (long long)(ms / 60000 % 60), (long long)(ms / 1000 % 60), decimal_mark, (long long)(ms % 1000));
  return buf;
}

double text_compression_ratio(std::string_view text) {
  if (text.empty()) return 0.0;
  uLongf n = compressBound(uLong(text.size()));
  std::vector<Bytef> out(n);
  if (compress2(out.data(), &n, reinterpret_cast<const Bytef*>(text.data()), uLong(text.size()),
                Z_DEFAULT_COMPRESSION) != Z_OK ||
      n == 0)
    return 0.0;
  return double(text.size()) / double(n);
}

transcript_body format_transcript(const transcription& t, transcript_format f, const transcript_context& ctx) {
  using json = nlohmann::ordered_json;  // keys in OpenAI's order
  auto dump = [](const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); };
  switch (f) {
    case transcript_format::JSON:
      return {dump({{"text", utf8::lossy(t.text)}, {"usage", usage_of(t)}}), "application/json"};
    case transcript_format::TEXT:
      return {utf8::lossy(t.text) + "\n", "text/plain; charset=utf-8"};
    case transcript_format::SRT:
      return {subtitles(t, false), "text/plain; charset=utf-8"};
    case transcript_format::VTT:
      return {subtitles(t, true), "text/vtt; charset=utf-8"};
    case transcript_format::VERBOSE_JSON:
      break;
  }
  json segments = json::array();
  for (const transcription_segment& s : t.segments) {
    // speech.h does not report which 30 s window a segment was decoded in, so `seek` is the segment's own first
    // 10 ms mel frame (openai-whisper gives its window's; the two agree for the first window's first segment).
    segments.push_back({{"id", s.id},
                        {"seek", int64_t(std::floor(s.start * 100.0 + 1e-6))},
                        {"start", s.start},
                        {"end", s.end},
                        {"text", utf8::lossy(s.text)},
                        {"tokens", s.tokens},
                        {"temperature", ctx.temperature},
                        {"avg_logprob", s.avg_logprob},
                        {"compression_ratio", text_compression_ratio(s.text)},
                        {"no_speech_prob", s.no_speech_prob}});
  }
  json body = {{"task", ctx.translate ? "translate" : "transcribe"},
               {"language", whisper_language_name(t.language)},
               {"duration", t.duration_s},
               {"text", utf8::lossy(t.text)},
               {"segments", std::move(segments)},
               {"usage", usage_of(t)}};
  return {dump(body), "application/json"};
}

}  // namespace autoglm::server
