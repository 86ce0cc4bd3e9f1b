// tools/cmd_quantize.cpp: `autoglm quantize`: a GLM-4.1V Hugging Face directory -> llama.cpp's GGUF files (the
// text decoder, and with --mmproj the vision tower), in the weight type asked for, with per-tensor overrides
// (--keep) for the guide's mixed precision. The layout is formats/gguf_glm4v.h's (llama.cpp's for this model).
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "command.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "formats/gguf_glm4v.h"
#include "formats/quantize.h"

namespace autoglm::cli {

namespace {

dtype parse_type(const std::string& s, const std::string& what) {
  dtype t;
  if (!dtype_from_name(s, t) || t == dtype::I8 || !quant::can_quantize(t))
    throw error(what + " '" + s + "' is not one of f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, q5_k, q6_k");
  return t;
}

int run_quantize(int argc, char** argv) {
  CLI::App app{"Write a GLM-4.1V checkpoint as llama.cpp GGUF files (text model, optionally the mmproj)", argv[0]};
  std::string model_dir = AUTOGLM_DEFAULT_MODEL_DIR, out, mmproj, type_name = "f16", name, tokenizer_dir;
  std::vector<std::string> keep;
  int threads = 0;
  bool quiet = false;
  app.add_option("-m,--model", model_dir, "model directory (Hugging Face layout); default: the bundled demo model");
  app.add_option("-o,--out", out, "output GGUF file of the text model")->required();
  app.add_option("--mmproj", mmproj, "also write the vision tower + projector to this GGUF file");
  app.add_option("--type", type_name,
                 "weight type of the matrices: f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, q5_k, q6_k (rows "
                 "a k-quant cannot hold fall back as llama.cpp's do: q4_k -> q5_0, q5_k -> q5_1, q6_k -> q8_0, else "
                 "f16)");
  app.add_option("--keep", keep,
                 "PATTERN=TYPE: tensors whose Hugging Face name matches PATTERN ('*' = any characters) are stored "
                 "as TYPE, e.g. --keep '*embed_tokens*=q8_0' --keep 'lm_head*=f16' (repeatable, first match wins)");
  app.add_option("--name", name, "general.name (default: the directory's name)");
  app.add_option("--tokenizer", tokenizer_dir,
                 "take tokenizer.json and the chat template from this directory (for random-weight checkpoints)");
  app.add_option("--threads", threads, "quantization threads (default: all cores)");
  app.add_flag("-q,--quiet", quiet, "do not list the tensors");
  CLI11_PARSE(app, argc, argv);
  try {
    glm4v_gguf::write_options opt;
    opt.type = parse_type(type_name, "--type");
    opt.name = name;
    opt.tokenizer_dir = tokenizer_dir;
    for (const std::string& k : keep) {
      const size_t eq = k.rfind('=');
      if (eq == std::string::npos || eq == 0) throw error("--keep '" + k + "' must be PATTERN=TYPE");
      opt.keep.emplace_back(k.substr(0, eq), parse_type(k.substr(eq + 1), "--keep type"));
    }
    thread_pool pool(threads > 0 ? threads : int(std::max(1u, std::thread::hardware_concurrency())));
    opt.pool = &pool;
    glm4v_gguf::write_log log;
    if (!quiet) log = [](const std::string& line) { std::fprintf(stderr, "  %s\n", line.c_str()); };
    const auto t0 = std::chrono::steady_clock::now();
    uint64_t bytes = glm4v_gguf::write_text(model_dir, out, opt, log);
    std::fprintf(stderr, "wrote %s (%.1f MB)\n", out.c_str(), double(bytes) / 1e6);
    if (!mmproj.empty()) {
      bytes = glm4v_gguf::write_mmproj(model_dir, mmproj, opt, log);
      std::fprintf(stderr, "wrote %s (%.1f MB)\n", mmproj.c_str(), double(bytes) / 1e6);
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::fprintf(stderr, "done in %.2f s\n", s);
    return 0;
  } catch (const error& e) {
    std::fprintf(stderr, "autoglm quantize: %s\n", e.what());
    return 1;
  }
}

}  // namespace

AUTOGLM_COMMAND("quantize", "write a checkpoint as llama.cpp GGUF files (f16, bf16, q8_0, q4_k, ...)", run_quantize);

}  // namespace autoglm::cli
