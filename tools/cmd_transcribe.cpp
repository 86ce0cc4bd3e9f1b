// tools/cmd_transcribe.cpp: `autoglm transcribe -m WHISPER_DIR FILE`: speech to text with a Whisper checkpoint
// (include/autoglm/speech.h), printed in the response formats of /v1/audio/transcriptions (json, text,
// verbose_json, srt, vtt; server/transcript_format.h), so the CLI and the server say the same thing.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "autoglm/speech.h"
#include "command.h"
#include "core/error.h"
#include "core/file_io.h"
#include "media/audio.h"
#include "server/transcript_format.h"

namespace autoglm::cli {

namespace {

int run_transcribe(int argc, char** argv) {
  CLI::App app{"Transcribe an audio file (wav, flac, ogg, opus, mp3) with a Whisper checkpoint"};
  std::string model_dir, file, language, prompt, response_format = "text", device = "cpu";
  float temperature = 0.0f;
  int threads = 0;
  bool translate = false;
  app.add_option("-m,--model", model_dir, "Whisper checkpoint directory (Hugging Face layout)")->required();
  app.add_option("file", file, "audio file")->required();
  app.add_option("--language", language, "spoken language as an ISO code (en, zh, ...); default: detected");
  app.add_option("--prompt", prompt, "text that came before, to steer spelling and style");
  app.add_option("--response-format", response_format, "json, text, verbose_json, srt or vtt")->capture_default_str();
  app.add_option("--temperature", temperature, "0: greedy; above 0: sampling")->check(CLI::Range(0.0f, 1.0f));
  app.add_flag("--translate", translate, "translate the speech to English text instead of transcribing it");
  app.add_option("--device", device, "where the model runs: cpu or cuda:N")->capture_default_str();
  app.add_option("-t,--threads", threads, "CPU threads (0: all cores)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  const server::transcript_format format = server::parse_transcript_format(response_format);
  const audio_limits limits;
  const std::string bytes = read_regular_file(file, limits.max_bytes);
  const size_t dot = file.rfind('.');
  const std::string hint = dot == std::string::npos ? "" : file.substr(dot + 1);
  std::vector<float> pcm;
  try {
    pcm = decode_audio_16k_mono(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), limits, hint);
  } catch (const invalid_request& e) {
    throw error(file + ": " + e.what());
  }

  speech_recognizer::options so;
  so.model_dir = model_dir;
  so.device = device;
  so.n_threads = threads;
  auto asr = speech_recognizer::load(so);
  transcription_options o;
  o.language = language;
  o.prompt = prompt;
  o.temperature = temperature;
  o.translate = translate;
  o.timestamps = server::transcript_needs_timestamps(format);
  const transcription t = asr->transcribe(pcm, o);
  const server::transcript_body out = server::format_transcript(t, format, {translate, temperature});
  std::fwrite(out.text.data(), 1, out.text.size(), stdout);
  if (format == server::transcript_format::JSON || format == server::transcript_format::VERBOSE_JSON)
    std::fputc('\n', stdout);
  return 0;
}

}  // namespace

AUTOGLM_COMMAND("transcribe", "speech to text with a Whisper checkpoint (json, text, verbose_json, srt, vtt)",
                run_transcribe);

}  // namespace autoglm::cli
