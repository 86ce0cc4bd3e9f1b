// server/transcript_format.h: a transcription (include/autoglm/speech.h) in the response formats of OpenAI's
// /v1/audio/transcriptions and whisper.cpp's server: json {"text"}, text, verbose_json (task, language, duration,
// segments with openai-whisper's fields), srt and vtt subtitles. Shared by the server and `autoglm transcribe`.
#pragma once

#include <string>
#include <string_view>

#include "autoglm/speech.h"

namespace autoglm::server {

enum class transcript_format { JSON, TEXT, VERBOSE_JSON, SRT, VTT };

// "json" | "text" | "verbose_json" | "srt" | "vtt"; anything else throws invalid_request naming response_format.
transcript_format parse_transcript_format(std::string_view name);
// Segment timestamps are decoded only for the formats that show them.
bool transcript_needs_timestamps(transcript_format f);

struct transcript_body {
  std::string text;
  std::string content_type;
};

struct transcript_context {
  bool translate = false;    // verbose_json's task
  float temperature = 0.0f;  // reported per segment, as openai-whisper does
};

transcript_body format_transcript(const transcription& t, transcript_format f, const transcript_context& ctx = {});

// Whisper's language name for an ISO code ("en" -> "english", as OpenAI's verbose_json reports it); the code
// itself when Whisper has no such language.
std::string whisper_language_name(std::string_view code);
// "HH:MM:SS,mmm" (SRT, decimal ',') or "HH:MM:SS.mmm" (WebVTT, '.'), rounded to the millisecond.
std::string subtitle_timestamp(double seconds, char decimal_mark);
// openai-whisper's compression_ratio: UTF-8 bytes / zlib-compressed bytes (a high ratio flags repetition loops).
double text_compression_ratio(std::string_view text);

}  // namespace autoglm::server
