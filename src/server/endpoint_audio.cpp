// server/endpoint_audio.cpp: POST /v1/audio/transcriptions and /v1/audio/translations (OpenAI's multipart form:
// file, model, language, prompt, temperature, response_format, timestamp_granularities[]), and the transcription
// of chat input_audio parts (after_audio_parts).
// Threads: the strand only routes; the CPU pool parses the form, checks the fields and probes the audio header (so
// a garbage upload gets its 400 without waiting behind someone's transcription); the ASR pool (one thread: the
// recognizer runs one call at a time anyway) decodes the samples and transcribes; the answer goes out on the
// strand. Decoding on the ASR thread keeps at most one decoded recording in memory (an hour is 230 MB of floats).
#include <charconv>
#include <cmath>

#include "chat/audio_parts.h"
#include "core/error.h"
#include "core/log.h"
#include "media/audio.h"
#include "server/api_error.h"
#include "server/app.h"
#include "server/multipart.h"
#include "server/transcript_format.h"

namespace autoglm::server {

namespace {

api_error no_speech_model(const std::string& param) {
  return api_error(400,
                   "this server has no speech recognition model: start it with --asr-model DIR (a Whisper "
                   "checkpoint in the Hugging Face layout, e.g. a download of openai/whisper-small)",
                   "invalid_request_error", param, "asr_model_not_loaded");
}

// Bad audio is the client's file: 400 naming the form field or message part.
api_error bad_audio(const std::exception& e, const std::string& param) {
  return api_error(400, std::string("invalid audio file: ") + e.what(), "invalid_request_error", param,
                   "invalid_audio");
}

// Clients of OpenAI's API send "whisper-1"; this server answers it with whichever Whisper model it has.
void check_asr_model_name(const app& a, const std::string& model) {
  if (model.empty() || model == "whisper-1" || model == a.asr->model_name()) return;
  throw api_error(404,
                  "The model `" + model + "` does not exist. This server transcribes with `" + a.asr->model_name() +
                      "` (or send `whisper-1`).",
                  "invalid_request_error", "model", "model_not_found");
}

// Counts the request in flight, so a graceful shutdown waits for it.
struct inflight_hold {
  explicit inflight_hold(app& a) : a_(a) { a_.n_inflight++; }
  ~inflight_hold() { a_.n_inflight--; }
  inflight_hold(const inflight_hold&) = delete;
  inflight_hold& operator=(const inflight_hold&) = delete;
  app& a_;
};

struct audio_job {
  std::shared_ptr<std::string> body;  // the form; `file` views into it
  std::string_view file;
  std::string format_hint;  // the upload's file extension or MIME subtype ("wav", "mpeg")
  transcription_options options;
  transcript_format format = transcript_format::JSON;
};

float parse_temperature(const std::string& s) {
  float v = 0;
  const char* end = s.data() + s.size();
  auto [ptr, ec] = std::from_chars(s.data(), end, v);
  if (ec != std::errc() || ptr != end || !std::isfinite(v) || v < 0.0f || v > 1.0f)
    throw bad_request("temperature must be a number between 0 and 1, got '" + s.substr(0, 32) + "'", "temperature");
  return v;
}

std::string format_hint_of(const multipart_part& file) {
  if (file.filename) {
    const size_t dot = file.filename->rfind('.');
    if (dot != std::string::npos && dot + 1 < file.filename->size()) return file.filename->substr(dot + 1);
  }
  const size_t slash = file.content_type.find('/');
  return slash == std::string::npos ? "" : file.content_type.substr(slash + 1);
}

// Form fields -> the job (CPU pool). Unknown fields are ignored, as for JSON bodies.
audio_job parse_audio_form(const app& a, std::shared_ptr<std::string> body, const std::string& content_type,
                           bool translate) {
  multipart_limits limits;
  const multipart_form form(content_type, *body, limits);
  audio_job job;
  if (auto model = form.text("model")) check_asr_model_name(a, *model);
  if (auto language = form.text("language")) job.options.language = *language;
  if (auto prompt = form.text("prompt")) job.options.prompt = *prompt;
  if (auto t = form.text("temperature"); t && !t->empty()) job.options.temperature = parse_temperature(*t);
  if (auto f = form.text("response_format"); f && !f->empty()) job.format = parse_transcript_format(*f);
  for (const std::string& g : form.texts("timestamp_granularities[]")) {
    if (g == "word")
      throw bad_request("word timestamps are not supported; use timestamp_granularities[]=segment",
                        "timestamp_granularities");
    if (g != "segment")
      throw bad_request("timestamp_granularities entries must be 'segment' or 'word', got '" + g.substr(0, 32) + "'",
                        "timestamp_granularities");
  }
  if (auto stream = form.text("stream"); stream && *stream != "false")
    throw bad_request("streaming transcription is not supported; leave 'stream' unset or false", "stream");
  job.options.translate = translate;
  job.options.timestamps = transcript_needs_timestamps(job.format);

  const multipart_part* file = form.find("file");
  if (!file)
    throw api_error(400, "the form has no 'file' part: send the audio file (wav, flac, ogg, opus, mp3) as 'file'",
                    "invalid_request_error", "file", "missing_file");
  if (file->data.empty()) throw api_error(400, "the uploaded 'file' is empty", "invalid_request_error", "file");
  job.file = file->data;
  job.format_hint = format_hint_of(*file);
  job.body = std::move(body);
  return job;
}

void send_error_from_pool(const std::shared_ptr<connection>& conn, const char* context) {
  api_error e = current_api_error(context);
  net::post(conn->executor(), [conn, e] { send_api_error(conn, e); });
}

}  // namespace

void handle_audio(app& a, const std::shared_ptr<connection>& conn, http_request& req, bool translate) {
  if (!a.asr) throw no_speech_model("");
  auto hold = std::make_shared<inflight_hold>(a);
  const auto ct = req[http::field::content_type];
  std::string content_type(ct.data(), ct.size());
  auto body = std::make_shared<std::string>(std::move(req.body()));
  net::post(a.cpu_pool, [&a, conn, hold, body = std::move(body), content_type, translate]() mutable {
    try {
      auto job = std::make_shared<audio_job>(parse_audio_form(a, std::move(body), content_type, translate));
      const audio_limits limits;
      try {
        probe_audio(reinterpret_cast<const uint8_t*>(job->file.data()), job->file.size(), limits, job->format_hint);
      } catch (const invalid_request& e) {
        throw bad_audio(e, "file");
      }
      net::post(a.asr_pool, [&a, conn, hold, job, limits, translate] {
        try {
          std::vector<float> pcm;
          try {
            pcm = decode_audio_16k_mono(reinterpret_cast<const uint8_t*>(job->file.data()), job->file.size(), limits,
                                        job->format_hint);
          } catch (const invalid_request& e) {
            throw bad_audio(e, "file");
          }
          job->body.reset();  // the upload is not needed past here
          const transcription t = a.asr->transcribe(pcm, job->options);
          a.metrics.on_audio_transcribed(translate ? "translations" : "transcriptions", t.duration_s);
          auto out = std::make_shared<transcript_body>(
              format_transcript(t, job->format, {translate, job->options.temperature}));
          run_on_strand(conn, [conn, hold, out] { conn->send(200, std::move(out->text), out->content_type); });
        } catch (...) {
          send_error_from_pool(conn, "transcribing audio");
        }
      });
    } catch (...) {
      send_error_from_pool(conn, "reading an audio upload");
    }
    if (body) body.reset();
    schedule_memory_trim(a);
  });
}

void after_audio_parts(app& a, const std::shared_ptr<connection>& conn, nlohmann::ordered_json& messages,
                       std::function<void()> then) {
  if (!has_audio_parts(messages)) return then();
  if (!a.asr) throw no_speech_model(first_audio_part_param(messages) + ".type");
  net::post(a.asr_pool, [&a, conn, &messages, then = std::move(then)]() mutable {
    try {
      const audio_parts_result r = transcribe_audio_parts(messages, *a.asr, audio_limits{});
      a.metrics.on_audio_transcribed("chat", r.seconds);
      // Template and tokenizing belong on the CPU pool; the ASR thread goes on to the next recording.
      net::post(a.cpu_pool, [conn, then = std::move(then)] {
        try {
          then();
        } catch (...) {
          send_error_from_pool(conn, "handling a request body");
        }
      });
    } catch (...) {
      send_error_from_pool(conn, "transcribing input_audio");
    }
  });
}

}  // namespace autoglm::server
