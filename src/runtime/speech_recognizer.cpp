// runtime/speech_recognizer.cpp: autoglm::speech_recognizer (include/autoglm/speech.h) over a Whisper model
// (model/whisper), its tokenizer, the log-mel features (media/whisper_features.h) and the decoding rules
// (runtime/whisper_decoding.h). One exec_context on the chosen device; calls are serialized by a mutex.
//
// Windows: the audio is cut at 10 ms mel frames; each window holds up to 30 s (3000 frames) and is padded to 30 s
// by the feature extractor. Without timestamps every window is one segment and the next starts where it ends;
// with timestamps the next one starts after the window's last complete segment (openai-whisper's seek), and
// segments are kept inside the audio (a window's padding is silence the model may still put timestamps in).
#include <algorithm>
#include <filesystem>
#include <mutex>

#include "autoglm/speech.h"
#include "core/error.h"
#include "media/whisper_features.h"
#include "model/whisper/whisper.h"
#include "ops/ops.h"
#include "runtime/whisper_decoding.h"
#include "tokenizer/tokenizer.h"

namespace autoglm {

namespace {

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1);
}

std::string directory_name(const std::string& dir) {
  std::filesystem::path p(dir);
  if (!p.has_filename()) p = p.parent_path();  // "models/whisper-tiny/"
  return p.filename().string();
}

device parse_device(const std::string& name) {
  const device dev = device::parse(name.empty() ? "cpu" : name);
  if (const std::string problem = ops::device_problem(dev); !problem.empty()) throw error(problem);
  return dev;
}

class whisper_recognizer final : public speech_recognizer {
 public:
  explicit whisper_recognizer(const options& opt)
      : ctx_(parse_device(opt.device), opt.n_threads), name_(directory_name(opt.model_dir)) {
    model_ = whisper::model::load(opt.model_dir, ctx_);
    const whisper::config& cfg = model_->cfg();
    const std::string tok_file = opt.model_dir + "/tokenizer.json";
    if (!std::filesystem::exists(tok_file))
      throw error(tok_file + ": missing (the Whisper tokenizer turns tokens into text)");
    tok_ = tokenizer::load(tok_file);
    const std::string pre_file = opt.model_dir + "/preprocessor_config.json";
    if (!std::filesystem::exists(pre_file))
      throw error(pre_file + ": missing (WhisperFeatureExtractor's settings: mel bins, hop, window length)");
    features_ = whisper_feature_config::load(pre_file);
    if (features_.feature_size != cfg.num_mel_bins || features_.nb_max_frames != cfg.n_frames())
      throw error(pre_file + ": feature_size " + std::to_string(features_.feature_size) + " and " +
                  std::to_string(features_.nb_max_frames) + " frames per window do not match config.json's " +
                  std::to_string(cfg.num_mel_bins) + " mel bins and " + std::to_string(cfg.n_frames()) + " frames");
    special_ = whisper::special_tokens::from(model_->gen(), tok_.get(), cfg.vocab_size);
  }

  std::string model_name() const override { return name_; }

  transcription transcribe(const std::vector<float>& pcm, const transcription_options& opt) override {
    std::lock_guard<std::mutex> lock(mu_);
    const whisper::config& cfg = model_->cfg();
    transcription out;
    out.duration_s = double(pcm.size()) / features_.sampling_rate;
    whisper::window_options wo;
    wo.timestamps = opt.timestamps;
    wo.translate = opt.translate;
    wo.temperature = opt.temperature;
    wo.seed = opt.seed;
    if (opt.timestamps && special_.timestamp_begin < 0)
      throw invalid_request("this Whisper model has no timestamp tokens", "timestamp_granularities");
    out.language = resolve_language(opt.language, wo);
    if (const std::string prompt = trim(opt.prompt); !prompt.empty()) {
      std::string text(1, ' ');  // Whisper's prompts start with a space, as transformers' get_prompt_ids writes them
      text += prompt;
      wo.prompt = whisper::truncate_prompt(tok_->encode(text, false), cfg.max_target_positions);
    }

    const int64_t hop = features_.hop_length, total_frames = (int64_t(pcm.size()) + hop - 1) / hop;
    const double frame_s = double(hop) / features_.sampling_rate;
    for (int64_t seek = 0; seek < total_frames;) {
      const int64_t window_frames = std::min<int64_t>(features_.nb_max_frames, total_frames - seek);
      const size_t first = size_t(seek * hop);
      const size_t n = std::min(pcm.size() - first, size_t(window_frames * hop));
      const std::vector<float> mel = whisper_log_mel(pcm.data() + first, n, features_);
      const tensor states = model_->encoder().encode(ctx_, mel.data());
      if (special_.multilingual && wo.language_token < 0) {  // the language-id step, on the first window
        whisper::decoder_state probe = model_->decoder().start(ctx_, states);
        wo.language_token = whisper::detect_language(step_of(probe), special_);
        for (const auto& [code, id] : special_.languages)
          if (id == wo.language_token) out.language = code;
      }
      whisper::decoder_state st = model_->decoder().start(ctx_, states);
      const whisper::window_result r =
          whisper::decode_window(step_of(st), special_, model_->gen(), wo, cfg.max_target_positions);
      const double offset = double(seek) * frame_s;
      if (r.no_speech_prob > opt.no_speech_threshold && r.avg_logprob < opt.logprob_threshold) {
        seek += window_frames;  // silence: no segment
        continue;
      }
      std::vector<whisper::timed_segment> segs;
      if (opt.timestamps) {
        whisper::window_segments ws = whisper::split_timestamped(special_, r.tokens, offset, window_frames);
        segs = std::move(ws.segments);
        seek += std::max<int64_t>(1, ws.advance_frames);
      } else {
        segs.push_back({offset, offset + double(window_frames) * frame_s, r.tokens});
        seek += window_frames;
      }
      for (whisper::timed_segment& s : segs) {
        // Timestamps past the end of the audio describe the window's zero padding: such a segment is dropped,
        // one that runs past it ends with the audio.
        if (s.start >= out.duration_s) continue;
        transcription_segment t;
        t.id = int32_t(out.segments.size());
        t.start = s.start;
        t.end = std::min(s.end, out.duration_s);
        t.text = text_of(s.tokens);
        t.tokens = std::move(s.tokens);
        t.avg_logprob = float(r.avg_logprob);
        t.no_speech_prob = r.no_speech_prob;
        out.text += t.text;
        out.segments.push_back(std::move(t));
      }
    }
    out.text = trim(out.text);
    return out;
  }

 private:
  whisper::step_fn step_of(whisper::decoder_state& st) {
    return [this, &st](const std::vector<int32_t>& ids, const std::vector<int32_t>& rows) {
      return model_->decoder().forward(ctx_, st, ids, rows);
    };
  }

  // The language token for `code` ("" on a multilingual model: detected later, on the first window).
  std::string resolve_language(const std::string& code_in, whisper::window_options& wo) const {
    std::string code = code_in;
    std::transform(code.begin(), code.end(), code.begin(), [](unsigned char c) { return char(std::tolower(c)); });
    if (!special_.multilingual) {
      if (!code.empty() && code != "en")
        throw invalid_request("this Whisper model is English-only; language '" + code_in + "' is not available",
                              "language");
      return "en";
    }
    if (code.empty()) return "";
    const auto it = special_.languages.find(code);
    if (it == special_.languages.end())
      throw invalid_request("language '" + code_in + "' is not one this Whisper model knows (ISO 639-1 codes such as "
                            "'en', 'zh', 'de')", "language");
    wo.language_token = it->second;
    return code;
  }

  // Text of a segment: its text tokens (every id below <|endoftext|>), decoded.
  std::string text_of(const std::vector<int32_t>& tokens) const {
    std::vector<int32_t> text;
    for (int32_t id : tokens)
      if (id < special_.eot) text.push_back(id);
    return tok_->decode(text, true);
  }

  exec_context ctx_;
  std::string name_;
  std::unique_ptr<whisper::model> model_;
  std::unique_ptr<tokenizer> tok_;
  whisper_feature_config features_;
  whisper::special_tokens special_;
  std::mutex mu_;
};

}  // namespace

std::unique_ptr<speech_recognizer> speech_recognizer::load(const options& opt) {
  if (opt.model_dir.empty()) throw error("speech_recognizer: model_dir is empty");
  if (!std::filesystem::is_directory(opt.model_dir)) throw error(opt.model_dir + ": model directory not found");
  return std::make_unique<whisper_recognizer>(opt);
}

}  // namespace autoglm
