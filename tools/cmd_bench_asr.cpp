// tools/cmd_bench_asr.cpp: `autoglm bench-asr`: speed of Whisper speech recognition on one device, JSON out.
//
// Two parts, both over the same checkpoint directory:
//  - Components of one 30 s window (model/whisper directly), timed the way whisper.cpp's bench times its model
//    (whisper_bench / whisper.node's bench(): one encode, then single-token decode calls at positions 0..N-1, and a
//    256-token prompt call), so the numbers stand beside the peer's: log-mel of 30 s (whisper.cpp's bench does not
//    time its mel); encode (convolutions + encoder layers); cross K/V (every decoder layer's K and V of the encoder
//    states, which whisper.cpp computes inside its encode); decode ms per token (one forward of one token through
//    the KV cache with host logits of the whole vocabulary, averaged over --decode-tokens positions from 0: the
//    prompt <|startoftranscript|> <|en|> <|transcribe|> <|notimestamps|> then the greedy text token, end of text
//    ignored, so the count is fixed whatever random weights predict); prompt: --prompt-tokens in one forward.
//    The real-time factor of a window is then (mel + encode + cross K/V + (4 + T) x decode per token) / 30 s with
//    T = --tokens-per-window text tokens (default 100: ~75 words of fluent English in 30 s).
//  - End to end: speech_recognizer::transcribe() (include/autoglm/speech.h) on synthetic audio of each --audio
//    duration (or --file), language "en", greedy, the silence guard off; wall time, the tokens it decoded (random
//    weights decode until <|endoftext|> or the 448-position limit, so this count varies by checkpoint), and
//    time / audio duration.
// Every figure: median, min and max over --reps after --warmup untimed rounds.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "autoglm/speech.h"
#include "cli_common.h"
#include "command.h"
#include "core/error.h"
#include "core/file_io.h"
#include "media/audio.h"
#include "media/whisper_features.h"
#include "model/whisper/whisper.h"
#include "ops/ops.h"

namespace autoglm::cli {

namespace {

using json = nlohmann::json;
using clock_type = std::chrono::steady_clock;

json spread(const std::vector<double>& v) {
  return {{"median", median(v)}, {"min", *std::min_element(v.begin(), v.end())},
          {"max", *std::max_element(v.begin(), v.end())}, {"values", v}};
}

// Speech-like test signal: a 120 Hz voice with harmonics, amplitude-modulated at a syllable rate, plus a little
// noise. The model's cost does not depend on it; a fixed signal keeps runs comparable.
std::vector<float> synthetic_speech(double seconds) {
  const size_t n = size_t(seconds * 16000.0);
  std::vector<float> pcm(n);
  uint64_t s = 0x2545F4914F6CDD1Dull;
  for (size_t i = 0; i < n; ++i) {
    const double t = double(i) / 16000.0;
    double v = 0;
    for (int h = 1; h <= 8; ++h) v += std::sin(2.0 * M_PI * 120.0 * h * t) / h;
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    const double noise = (double(s >> 11) / 9007199254740992.0 - 0.5) * 0.02;
    pcm[i] = float(0.15 * v * (0.55 + 0.45 * std::sin(2.0 * M_PI * 4.0 * t)) + noise);
  }
  return pcm;
}

std::vector<double> parse_seconds(const std::string& text) {
  std::vector<double> out;
  std::stringstream ss(text);
  for (std::string item; std::getline(ss, item, ',');) {
    if (item.empty()) continue;
    size_t used = 0;
    double v = 0;
    try {
      v = std::stod(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != item.size() || !(v > 0.0) || v > 3600.0)
      throw error("--audio: '" + item + "' is not a duration in seconds (0 < s <= 3600)");
    out.push_back(v);
  }
  return out;
}

struct component_times {
  std::vector<double> mel, encode, cross_kv, decode_per_token, prompt;
};

// One round of the window components; appends to `t` when `record`.
void time_components(exec_context& ctx, const whisper::model& m, const whisper_feature_config& fc,
                     const std::vector<float>& pcm30, int decode_tokens, int prompt_tokens, bool record,
                     component_times& t) {
  const whisper::config& cfg = m.cfg();
  const whisper::generation_config& gen = m.gen();
  const auto t0 = clock_type::now();
  const std::vector<float> mel = whisper_log_mel(pcm30.data(), pcm30.size(), fc);
  const auto t1 = clock_type::now();
  const tensor states = m.encoder().encode(ctx, mel.data());
  ops::synchronize(ctx);
  const auto t2 = clock_type::now();
  whisper::decoder_state st = m.decoder().start(ctx, states);
  const auto t3 = clock_type::now();

  std::vector<int32_t> prompt = {gen.decoder_start_token_id};
  if (gen.is_multilingual) {
    prompt.push_back(gen.language_token("en"));
    prompt.push_back(gen.task_to_id.at("transcribe"));
  }
  if (gen.no_timestamps_token_id >= 0) prompt.push_back(gen.no_timestamps_token_id);
  const int32_t n_text = std::min(gen.eos_token_id, cfg.vocab_size);
  double decode_ms = 0;
  int32_t next = prompt[0];
  for (int i = 0; i < decode_tokens; ++i) {
    if (i < int(prompt.size())) next = prompt[size_t(i)];
    const auto a = clock_type::now();
    const std::vector<float> logits = m.decoder().forward(ctx, st, {next}, {0});
    decode_ms += ms_between(a, clock_type::now());
    next = int32_t(std::max_element(logits.begin(), logits.begin() + n_text) - logits.begin());
  }

  whisper::decoder_state fresh = m.decoder().start(ctx, states);
  std::vector<int32_t> ids(static_cast<size_t>(prompt_tokens));
  for (int i = 0; i < prompt_tokens; ++i) ids[size_t(i)] = int32_t((int64_t(i) * 7919 + 13) % n_text);
  const auto p0 = clock_type::now();
  m.decoder().forward(ctx, fresh, ids, {prompt_tokens - 1});
  const double prompt_ms = ms_between(p0, clock_type::now());
  if (!record) return;
  t.mel.push_back(ms_between(t0, t1));
  t.encode.push_back(ms_between(t1, t2));
  t.cross_kv.push_back(ms_between(t2, t3));
  t.decode_per_token.push_back(decode_ms / decode_tokens);
  t.prompt.push_back(prompt_ms);
}

json components_json(const component_times& t, int tokens_per_window, int prompt_len) {
  const double window_ms = 30000.0;
  const int n_dec = prompt_len + tokens_per_window;
  const double mel = median(t.mel), enc = median(t.encode), xkv = median(t.cross_kv),
               dec = median(t.decode_per_token);
  return {{"mel_ms", spread(t.mel)},
          {"encode_ms", spread(t.encode)},
          {"cross_kv_ms", spread(t.cross_kv)},
          {"decode_ms_per_token", spread(t.decode_per_token)},
          {"prompt_ms", spread(t.prompt)},
          {"window",
           {{"tokens_per_window", tokens_per_window},
            {"decode_calls", n_dec},
            {"ms", mel + enc + xkv + n_dec * dec},
            {"rtf", (mel + enc + xkv + n_dec * dec) / window_ms},
            {"rtf_without_mel", (enc + xkv + n_dec * dec) / window_ms}}}};
}

int run_bench_asr(int argc, char** argv) {
  CLI::App app{"Time Whisper speech recognition: window components (encode, decode per token) and transcribe()"};
  std::string model_dir, device_name = "cpu", audio = "30", file, out_file;
  int threads = 0, reps = 3, warmup = 1, decode_tokens = 256, prompt_tokens = 256, tokens_per_window = 100;
  bool no_components = false;
  app.add_option("-m,--model", model_dir, "Whisper checkpoint directory (Hugging Face layout)")->required();
  app.add_option("--device", device_name, "cpu or cuda:N");
  app.add_option("--threads", threads, "CPU threads (0: all cores)");
  app.add_option("--reps", reps, "timed repetitions of every measurement");
  app.add_option("--warmup", warmup, "untimed rounds first");
  app.add_option("--audio", audio, "durations in seconds for transcribe() on synthetic audio, e.g. 30,60 ('' : none)");
  app.add_option("--file", file, "an audio file for transcribe() as well (WAV/FLAC/OGG/MP3)");
  app.add_option("--decode-tokens", decode_tokens, "single-token decode calls per round (whisper.cpp's bench: 256)");
  app.add_option("--prompt-tokens", prompt_tokens, "tokens of the one-call prompt measurement (whisper.cpp: 256)");
  app.add_option("--tokens-per-window", tokens_per_window, "text tokens of a 30 s window in the real-time factor");
  app.add_flag("--no-components", no_components, "only transcribe()");
  app.add_option("-o,--out", out_file, "also write the JSON here");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (reps < 1 || reps > 1000 || warmup < 0 || warmup > 100) throw error("--reps 1..1000, --warmup 0..100");
  if (threads < 0) throw error("--threads must be >= 0");
  const std::vector<double> durations = parse_seconds(audio);
  const device dev = device::parse(device_name);
  if (const std::string problem = ops::device_problem(dev); !problem.empty()) throw error(problem);

  json out = {{"model", model_dir}, {"device", dev.str()}, {"threads", threads}, {"reps", reps}, {"warmup", warmup}};
  const whisper::config cfg = whisper::config::load(model_dir);
  out["dims"] = {{"d_model", cfg.d_model},         {"encoder_layers", cfg.encoder_layers},
                 {"decoder_layers", cfg.decoder_layers}, {"heads", cfg.encoder_heads},
                 {"ffn", cfg.encoder_ffn_dim},     {"mel_bins", cfg.num_mel_bins},
                 {"vocab", cfg.vocab_size}};

  if (!no_components) {
    const int positions = cfg.max_target_positions;
    if (decode_tokens < 4 || decode_tokens > positions || prompt_tokens < 1 || prompt_tokens > positions)
      throw error("--decode-tokens must be 4.." + std::to_string(positions) + ", --prompt-tokens 1.." +
                  std::to_string(positions));
    exec_context ctx(dev, threads);
    const auto l0 = clock_type::now();
    const std::unique_ptr<whisper::model> m = whisper::model::load(model_dir, ctx);
    const double load_ms = ms_between(l0, clock_type::now());
    const whisper_feature_config fc = whisper_feature_config::load(model_dir + "/preprocessor_config.json");
    const std::vector<float> pcm30 = synthetic_speech(30.0);
    component_times t;
    for (int r = 0; r < warmup + reps; ++r)
      time_components(ctx, *m, fc, pcm30, decode_tokens, prompt_tokens, r >= warmup, t);
    const int prompt_len = m->gen().is_multilingual ? 4 : 2;
    out["components"] = components_json(t, tokens_per_window, prompt_len);
    out["components"]["load_ms"] = load_ms;
    out["components"]["decode_tokens"] = decode_tokens;
    out["components"]["prompt_tokens"] = prompt_tokens;
  }

  std::vector<std::pair<std::string, std::vector<float>>> inputs;
  for (double d : durations) inputs.push_back({"synthetic " + std::to_string(d) + " s", synthetic_speech(d)});
  if (!file.empty()) {
    const std::string bytes = read_regular_file(file, 1ull << 30);
    audio_limits limits;
    limits.max_bytes = bytes.size();
    inputs.push_back({file, decode_audio_16k_mono(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(),
                                                  limits, std::filesystem::path(file).extension().string())});
  }
  if (!inputs.empty()) {
    speech_recognizer::options so;
    so.model_dir = model_dir;
    so.device = dev.str();
    so.n_threads = threads;
    const std::unique_ptr<speech_recognizer> rec = speech_recognizer::load(so);
    transcription_options topt;
    topt.language = "en";
    topt.no_speech_threshold = 2.0f;  // above 1: no window is dropped as silence, every decoded token counts
    json e2e = json::array();
    for (const auto& [name, pcm] : inputs) {
      const double seconds = double(pcm.size()) / 16000.0;
      std::vector<double> ms, tokens, rtf;
      size_t windows = 0;
      for (int r = 0; r < warmup + reps; ++r) {
        const auto a = clock_type::now();
        const transcription tr = rec->transcribe(pcm, topt);
        const double dt = ms_between(a, clock_type::now());
        if (r < warmup) continue;
        size_t n = 0;
        for (const transcription_segment& s : tr.segments) n += s.tokens.size();
        ms.push_back(dt);
        tokens.push_back(double(n));
        rtf.push_back(dt / 1000.0 / seconds);
        windows = tr.segments.size();
      }
      e2e.push_back({{"audio", name}, {"seconds", seconds}, {"windows", windows}, {"ms", spread(ms)},
                     {"tokens", spread(tokens)}, {"rtf", spread(rtf)}});
    }
    out["transcribe"] = e2e;
  }
  print_json(out, out_file);
  return 0;
}

}  // namespace

AUTOGLM_COMMAND("bench-asr", "time Whisper speech recognition (window components and transcribe), JSON out",
                run_bench_asr);

}  // namespace autoglm::cli
