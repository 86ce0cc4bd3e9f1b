// chat/audio_parts.h: OpenAI's `input_audio` content parts in chat messages
// ({"type": "input_audio", "input_audio": {"data": <base64>, "format": "wav" | "mp3" | ...}}). GLM-4.1V has no
// audio tower, so speech reaches it as text: each part is decoded (media/audio.h), transcribed by a Whisper model
// (include/autoglm/speech.h), and replaced by a text part holding the transcript, in the part's place. The chat
// template then renders the message as if the user had typed the words.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>

#include "autoglm/speech.h"
#include "media/audio.h"

namespace autoglm {

// True when some message's content has an input_audio part.
bool has_audio_parts(const nlohmann::ordered_json& messages);

// "messages[i].content[j]" of the first input_audio part (for errors that refuse them all); empty when none.
std::string first_audio_part_param(const nlohmann::ordered_json& messages);

struct audio_parts_result {
  int32_t n_parts = 0;
  double seconds = 0;  // audio transcribed, all parts
};

// Replaces every input_audio part by {"type": "text", "text": <transcript>} (base64 and decoded samples are freed
// part by part). Throws invalid_request naming the part ("messages[1].content[0].input_audio") for bad base64,
// audio that does not decode, or audio over `limits`.
audio_parts_result transcribe_audio_parts(nlohmann::ordered_json& messages, speech_recognizer& asr,
                                          const audio_limits& limits);

}  // namespace autoglm
