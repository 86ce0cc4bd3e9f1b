// tools/cmd_eval.cpp: `autoglm eval`: how far a quantized model's next-token distributions are from a reference
// model's over a text. Both models run (teacher forcing) over the text, tokenized with the reference's tokenizer,
// in windows of --ctx tokens, each window preceded by the tokenizer's prefix ([gMASK]<sop> for GLM) and computed
// from an empty cache. At every position followed by a text token: KL(ref || quant), top-1 agreement, the
// negative log-likelihood of the next token under each (perplexity), and the soft cross-entropy at temperature T
// (cli_eval_metrics.h). The compared model is a directory (safetensors or GGUF files), a lone text-model .gguf
// file, or the reference itself quantized at load (--quant).
#include <CLI/CLI.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include "autoglm/engine.h"
#include "cli_common.h"
#include "cli_eval_metrics.h"
#include "command.h"
#include "core/error.h"
#include "core/file_io.h"
#include "formats/json_file.h"
#include "tokenizer/tokenizer.h"

namespace autoglm::cli {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr uint64_t k_max_text_bytes = uint64_t(64) << 20;

// A model directory for a lone text-model .gguf file: the reference's config.json without its vision_config (a
// text GGUF has no vision tower, and the text is all eval runs) and the file itself, linked. Removed at the end.
class gguf_file_dir {
 public:
  gguf_file_dir(const std::string& gguf, const std::string& ref_dir) {
    std::string tmpl = (fs::temp_directory_path() / "autoglm-eval-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) throw error("cannot create a temporary directory for " + gguf);
    dir_ = tmpl;
    json cfg = read_json_file(ref_dir + "/config.json");
    if (!cfg.is_object()) throw error(ref_dir + "/config.json: not a JSON object");
    cfg.erase("vision_config");
    std::ofstream(dir_ + "/config.json") << cfg.dump(2);
    fs::create_symlink(fs::absolute(gguf), fs::path(dir_) / fs::path(gguf).filename());
  }
  ~gguf_file_dir() {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
};

std::unique_ptr<engine> open_engine(engine_options eo, const char* what, double* load_s) {
  eo.max_num_seqs = 1;
  eo.enable_prefix_caching = false;  // every window from an empty cache, in both models
  const auto t0 = std::chrono::steady_clock::now();
  auto eng = engine::create(eo);
  *load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::fprintf(stderr, "%s: %s loaded in %.2f s\n", what, eo.model_dir.c_str(), *load_s);
  return eng;
}

std::vector<float> prompt_logits(engine& eng, const std::vector<int32_t>& prompt) {
  generation_request req;
  req.prompt = prompt;
  req.sampling.temperature = 0.0f;
  req.sampling.max_tokens = 1;
  req.sampling.ignore_eos = true;
  req.return_prompt_logits = true;
  std::vector<float> logits;
  run_to_completion(eng, std::move(req), [&](const generation_event& ev) {
    if (!ev.prompt_logits.empty()) logits = ev.prompt_logits;
  });
  if (logits.size() != prompt.size() * size_t(eng.info().vocab_size))
    throw error("the engine returned no prompt logits");
  return logits;
}

int run_eval(int argc, char** argv) {
  CLI::App app{"Compare a (quantized) model with a reference over a text: KL, top-1 agreement, perplexity, soft "
               "cross-entropy at temperature T"};
  std::string ref_dir, quant_path, text_file, tokenizer_dir, out_file;
  int ctx = 512, threads = 0;
  int64_t max_tokens = 0;
  double temperature = 5.0;
  bool as_json = false;
  quant_flags quant;
  app.add_option("-m,--model", ref_dir, "reference model directory (Hugging Face layout)")->required();
  app.add_option("-q,--quantized", quant_path,
                 "model to compare: a directory (safetensors or GGUF files) or a text-model .gguf file");
  quant.add_to(app);
  app.add_option("--text", text_file, "UTF-8 text to evaluate on")->required();
  app.add_option("--ctx", ctx, "text tokens per window (each window starts from an empty cache)")->capture_default_str();
  app.add_option("--temperature", temperature, "temperature of the soft cross-entropy (the guide's distillation T)")
      ->capture_default_str();
  app.add_option("--max-tokens", max_tokens, "evaluate only the first N tokens of the text (0: all)");
  app.add_option("--tokenizer", tokenizer_dir,
                 "directory (or tokenizer.json) to tokenize with (default: the reference's; random-weight "
                 "checkpoints have none)");
  app.add_option("--threads", threads, "CPU threads of each model (default: all cores)");
  app.add_flag("--json", as_json, "print JSON instead of a table");
  app.add_option("-o,--out", out_file, "also write the JSON here");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (quant_path.empty() == quant.type.empty())
    throw error("give the model to compare: either -q DIR_OR_GGUF or --quant TYPE (quantize the reference at load)");
  if (ctx < 1 || ctx > (1 << 20)) throw error("--ctx must be between 1 and 1048576");
  if (!(temperature > 0) || !std::isfinite(temperature) || temperature > 1e6)
    throw error("--temperature must be a positive number");
  if (max_tokens < 0) throw error("--max-tokens must be >= 0");

  // Tokenize first: a missing tokenizer or text must not cost two model loads.
  std::string tok_path = tokenizer_dir.empty() ? ref_dir : tokenizer_dir;
  if (fs::is_directory(tok_path)) tok_path = (fs::path(tok_path) / "tokenizer.json").string();
  if (!fs::exists(tok_path))
    throw error(tok_path + " not found: the reference has no tokenizer; pass --tokenizer DIR (e.g. the demo model)");
  const auto tok = tokenizer::load(tok_path);
  const std::string text = read_regular_file(text_file, k_max_text_bytes);
  std::vector<int32_t> tokens = tok->encode(text, /*parse_special=*/false);
  if (max_tokens > 0 && int64_t(tokens.size()) > max_tokens) tokens.resize(size_t(max_tokens));
  const std::vector<int32_t> prefix = tok->encode_with_post_processor("", false);
  if (tokens.size() + prefix.size() < 2) throw error(text_file + ": too short (" + std::to_string(tokens.size()) + " tokens)");

  engine_options ref_eo;
  ref_eo.model_dir = ref_dir;
  ref_eo.n_threads = threads;
  engine_options q_eo = ref_eo;
  std::unique_ptr<gguf_file_dir> tmp;
  std::string compared;
  if (!quant.type.empty()) {
    quant.apply(q_eo);
    compared = ref_dir + " --quant " + quant.type;
    for (const std::string& k : quant.keep) compared += " --quant-keep " + k;
  } else if (fs::is_regular_file(quant_path)) {
    tmp = std::make_unique<gguf_file_dir>(quant_path, ref_dir);
    q_eo.model_dir = tmp->dir();
    compared = quant_path;
  } else {
    q_eo.model_dir = quant_path;
    compared = quant_path;
  }
  double ref_load_s = 0, q_load_s = 0;
  auto ref = open_engine(ref_eo, "reference", &ref_load_s);
  auto cmp = open_engine(q_eo, "compared", &q_load_s);
  const int64_t V = ref->info().vocab_size;
  if (cmp->info().vocab_size != V)
    throw error("the models' vocabularies differ: " + std::to_string(V) + " and " +
                std::to_string(cmp->info().vocab_size) + " logits");
  for (int32_t t : tokens)
    if (t >= V) throw error("the tokenizer gives id " + std::to_string(t) + ", outside the models' " + std::to_string(V));
  const int64_t window_max = int64_t(prefix.size()) + ctx;
  if (window_max >= std::min(ref->max_model_len(), cmp->max_model_len()))
    throw error("--ctx " + std::to_string(ctx) + " (+" + std::to_string(prefix.size()) +
                " prefix tokens) does not fit the models' context of " +
                std::to_string(std::min(ref->max_model_len(), cmp->max_model_len())));

  eval_accumulator acc(temperature);
  const auto t0 = std::chrono::steady_clock::now();
  int64_t n_windows = 0, n_positions = 0;
  const bool progress = ::isatty(2);
  for (size_t a = 0; a < tokens.size(); a += size_t(ctx)) {
    const size_t b = std::min(tokens.size(), a + size_t(ctx));
    std::vector<int32_t> prompt = prefix;
    prompt.insert(prompt.end(), tokens.begin() + std::ptrdiff_t(a), tokens.begin() + std::ptrdiff_t(b));
    if (prompt.size() < 2) break;  // a last window of one token and no prefix predicts nothing
    const std::vector<float> lr = prompt_logits(*ref, prompt), lq = prompt_logits(*cmp, prompt);
    // Positions whose next token is text: from the prefix's last token on.
    const size_t first = prefix.empty() ? 0 : prefix.size() - 1;
    for (size_t p = first; p + 1 < prompt.size(); ++p)
      acc.add(measure_position(lr.data() + p * size_t(V), lq.data() + p * size_t(V), V, prompt[p + 1], temperature));
    n_positions += int64_t(prompt.size() - 1 - first);
    ++n_windows;
    if (progress) std::fprintf(stderr, "\rwindow %lld: %lld positions", (long long)n_windows, (long long)n_positions);
  }
  if (progress) std::fputc('\n', stderr);
  const double eval_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ref->shutdown();
  cmp->shutdown();
  const eval_summary s = acc.summary();

  json out;
  out["reference"] = ref_dir;
  out["compared"] = compared;
  out["text"] = text_file;
  out["n_text_tokens"] = tokens.size();
  out["ctx"] = ctx;
  out["n_windows"] = n_windows;
  out["n_positions"] = s.n_positions;
  out["kl_mean"] = s.kl_mean;
  out["kl_p99"] = s.kl_p99;
  out["kl_max"] = s.kl_max;
  out["top1_agreement"] = s.top1_agreement;
  out["ppl_ref"] = s.ppl_ref;
  out["ppl_quant"] = s.ppl_quant;
  out["temperature"] = s.temperature;
  out["soft_ce_t"] = s.soft_ce;
  out["kl_t"] = s.kl_at_t;
  out["soft_ce_t_times_t2"] = s.soft_ce_scaled();
  out["kl_t_times_t2"] = s.kl_at_t_scaled();
  out["load_s"] = {{"reference", ref_load_s}, {"compared", q_load_s}};
  out["eval_s"] = eval_s;
  const std::string dumped = out.dump(2);
  if (!out_file.empty()) std::ofstream(out_file) << dumped << "\n";
  if (as_json) {
    std::puts(dumped.c_str());
    return 0;
  }
  std::printf("reference  %s\ncompared   %s\ntext       %s: %zu tokens, %lld windows of <= %d, %lld positions\n",
              ref_dir.c_str(), compared.c_str(), text_file.c_str(), tokens.size(), (long long)n_windows, ctx,
              (long long)s.n_positions);
  std::printf("KL(ref || quant)    mean %.6g  p99 %.6g  max %.6g nats\n", s.kl_mean, s.kl_p99, s.kl_max);
  std::printf("top-1 agreement     %.4f\n", s.top1_agreement);
  std::printf("perplexity          ref %.4f  quant %.4f  (%+.3f%%)\n", s.ppl_ref, s.ppl_quant,
              100.0 * (s.ppl_quant / s.ppl_ref - 1.0));
  std::printf("soft CE at T=%g      %.6g nats (x T^2 = %.6g, the guide's soft_cross_entropy)\n", s.temperature,
              s.soft_ce, s.soft_ce_scaled());
  std::printf("KL at T=%g           %.6g nats (soft CE - ref entropy; x T^2 = %.6g)\n", s.temperature, s.kl_at_t,
              s.kl_at_t_scaled());
  return 0;
}

}  // namespace

AUTOGLM_COMMAND("eval", "compare a quantized model with its reference over a text (KL, top-1, perplexity)", run_eval);

}  // namespace autoglm::cli
