// chat/audio_parts.cpp: input_audio parts -> transcripts (see audio_parts.h).
#include "chat/audio_parts.h"

#include "core/error.h"
#include "media/image.h"  // base64_decode, base64_decoded_size
#include "tokenizer/unicode.h"

namespace autoglm {

using json = nlohmann::ordered_json;

namespace {

bool is_audio_part(const json& part) {
  return part.is_object() && part.contains("type") && part["type"].is_string() &&
         part["type"].get_ref<const std::string&>() == "input_audio";
}

template <class F>
void for_each_audio_part(const json& messages, F fn) {
  if (!messages.is_array()) return;
  for (size_t i = 0; i < messages.size(); ++i) {
    const json& m = messages[i];
    if (!m.is_object() || !m.contains("content") || !m["content"].is_array()) continue;
    const json& content = m["content"];
    for (size_t j = 0; j < content.size(); ++j)
      if (is_audio_part(content[j])) {
        if (!fn(i, j)) return;
      }
  }
}

std::string part_param(size_t i, size_t j) {
  return "messages[" + std::to_string(i) + "].content[" + std::to_string(j) + "]";
}

// The audio file's bytes of an input_audio part: bare base64 as OpenAI sends it, or a data URI
// ("data:audio/wav;base64,...") as some clients do. Refused before decoding when over the byte limit.
std::vector<uint8_t> audio_bytes(std::string_view data, size_t max_bytes, const std::string& param) {
  if (data.substr(0, 5) == "data:") {
    const size_t comma = data.find(',');
    if (comma == std::string_view::npos || data.substr(0, comma).find(";base64") == std::string_view::npos)
      throw invalid_request("input_audio.data: a data URI must be base64 ('data:audio/wav;base64,...')", param);
    data.remove_prefix(comma + 1);
  }
  if (data.size() / 4 * 3 > max_bytes) {
    const size_t n = base64_decoded_size(data);
    if (n > max_bytes)
      throw invalid_request(
          "the audio is " + std::to_string(n) + " bytes, over the limit of " + std::to_string(max_bytes) + " bytes",
          param);
  }
  std::vector<uint8_t> bytes;
  try {
    bytes = base64_decode(data);
  } catch (const error& e) {
    throw invalid_request(std::string("input_audio.data is not valid base64: ") + e.what(), param);
  }
  if (bytes.empty()) throw invalid_request("input_audio.data is empty", param);
  return bytes;
}

}  // namespace

bool has_audio_parts(const json& messages) { return !first_audio_part_param(messages).empty(); }

std::string first_audio_part_param(const json& messages) {
  std::string out;
  for_each_audio_part(messages, [&](size_t i, size_t j) {
    out = part_param(i, j);
    return false;
  });
  return out;
}

audio_parts_result transcribe_audio_parts(json& messages, speech_recognizer& asr, const audio_limits& limits) {
  std::vector<std::pair<size_t, size_t>> where;
  for_each_audio_part(messages, [&](size_t i, size_t j) {
    where.emplace_back(i, j);
    return true;
  });
  audio_parts_result out;
  for (const auto& [i, j] : where) {
    json& part = messages[i]["content"][j];
    const std::string param = part_param(i, j) + ".input_audio";
    const json* audio = part.contains("input_audio") ? &part["input_audio"] : nullptr;
    if (!audio || !audio->is_object() || !audio->contains("data") || !(*audio)["data"].is_string())
      throw invalid_request("an input_audio part needs \"input_audio\": {\"data\": <base64>, \"format\": ...}", param);
    std::string format;
    if (audio->contains("format") && (*audio)["format"].is_string()) format = (*audio)["format"].get<std::string>();

    std::vector<float> pcm;
    {
      std::vector<uint8_t> bytes =
          audio_bytes((*audio)["data"].get_ref<const std::string&>(), limits.max_bytes, param + ".data");
      part = nullptr;  // the base64 text is not needed past here
      try {
        pcm = decode_audio_16k_mono(bytes.data(), bytes.size(), limits, format);
      } catch (const invalid_request& e) {
        throw invalid_request(std::string("invalid audio: ") + e.what(), param);
      }
    }
    transcription t = asr.transcribe(pcm, transcription_options{});
    out.seconds += t.duration_s;
    out.n_parts++;
    // Byte-level tokens can end mid-character: the template and tokenizer take valid UTF-8 only (U+FFFD, as
    // transformers' decode(errors="replace") gives).
    part = json{{"type", "text"}, {"text", utf8::lossy(t.text)}};
  }
  return out;
}

}  // namespace autoglm
