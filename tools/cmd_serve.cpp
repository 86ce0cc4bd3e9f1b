// tools/cmd_serve.cpp: `autoglm serve` — the OpenAI-compatible HTTP server (src/server).
#include <CLI/CLI.hpp>
#include <filesystem>

#include "cli_common.h"
#include "core/log.h"
#include "command.h"
#include "server/server.h"

namespace {

int cmd_serve(int argc, char** argv) {
  autoglm::server::server_options o;
  o.engine.model_dir = AUTOGLM_DEFAULT_MODEL_DIR;
  std::string log_level = "info";
  std::string kv_type = "f32";
  autoglm::cli::quant_flags quant;
  int port = o.port;
  size_t max_body = o.max_body_bytes;

  CLI::App app{"Serve the model over an OpenAI-compatible HTTP API (/v1/chat/completions, /v1/completions, "
               "/v1/models, /tokenize, /detokenize, /health, /metrics; /v1/audio/transcriptions and "
               "/v1/audio/translations with --asr-model)"};
  app.add_option("-m,--model", o.engine.model_dir,
                 "model directory in the Hugging Face layout (default: the bundled random-weight demo model; for "
                 "real answers pass the directory of zai-org/AutoGLM-Phone-9B)");
  app.add_option("--served-model-name", o.served_model_name, "model name clients send and /v1/models lists")
      ->capture_default_str();
  app.add_option("--host", o.host, "address to listen on")->capture_default_str();
  app.add_option("--port", port, "port to listen on (0: any free port)")->capture_default_str()->check(CLI::Range(0, 65535));
  app.add_option("--api-key", o.api_key, "require 'Authorization: Bearer <key>' on every route but /health")
      ->envname("AUTOGLM_API_KEY");
  app.add_option("--cors-origin", o.cors_origin, "allowed CORS origin ('*' for any); empty: no CORS headers");
  app.add_option("-t,--threads", o.engine.n_threads, "compute threads of the engine (0: all cores)")->capture_default_str();
  app.add_option("--device", o.engine.device, "where the model runs: cpu or cuda:N (a build with the CUDA backend)")->capture_default_str();
  app.add_option("--tensor-parallel-size,--tp", o.engine.tensor_parallel_size, "split the decoder over N ranks (tensor parallelism) on consecutive devices from --device (cuda:N.. through NCCL; on the CPU an in-process group, for testing); images are encoded data-parallel, one per rank")
      ->capture_default_str()->check(CLI::Range(1, 64));
  app.add_option("--http-threads", o.n_http_threads, "I/O threads for HTTP (0: 2..4 by core count)")->capture_default_str();
  app.add_option("--max-num-seqs", o.engine.max_num_seqs, "sequences decoded together")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--max-model-len", o.engine.max_model_len, "context length (0: from the model and KV budget)")->capture_default_str();
  app.add_option("--max-waiting", o.engine.max_waiting, "queued requests beyond which new ones get 503")->capture_default_str();
  app.add_option("--max-batch-tokens", o.engine.max_batch_tokens, "prefill tokens per engine step (0: 512 on the CPU, 2048 on a GPU)")->capture_default_str();
  app.add_option("--kv-cache-bytes", o.engine.kv_cache_bytes, "KV cache budget in bytes (0: automatic)");
  app.add_option("--kv-type", kv_type, "KV cache element type: f32, f16 or bf16 (half the memory), q8_0 (about a quarter)")->capture_default_str();
  app.add_option("--vision-threads", o.engine.n_vision_threads,
                 "threads of the vision encoder beside decoding (0: half of --threads)")->capture_default_str();
  app.add_option("--max-pixels", o.max_pixels, "max image pixels after resizing (0: preprocessor_config.json)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--min-pixels", o.min_pixels, "min image pixels after resizing (0: preprocessor_config.json)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--max-images", o.max_images, "images per request (0: no limit)");
  app.add_option("--max-image-bytes", o.max_image_bytes, "size limit of one image file")->capture_default_str();
  app.add_option("--max-body-bytes", max_body, "request body limit (413 above)")->capture_default_str();
  app.add_option("--header-timeout", o.header_timeout_s,
                 "seconds to receive a request's headers (from its first byte, or from connecting)")
      ->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--body-timeout", o.body_timeout_s, "longest pause in seconds while a request body arrives")
      ->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--keepalive-timeout", o.keepalive_timeout_s, "seconds an idle connection stays open between requests")
      ->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--write-timeout", o.write_timeout_s,
                 "longest stall in seconds while a client does not read its response (then it is closed and its "
                 "generation cancelled)")
      ->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--max-queued-bytes", o.max_queued_bytes,
                 "response bytes queued for one client that does not read; beyond, it is closed and its generation "
                 "cancelled")
      ->capture_default_str()->check(CLI::Range(size_t(4096), size_t(1) << 40));
  app.add_option("--max-connections", o.max_connections,
                 "open connections served; a few more only get /health or 503 (0: from the file-descriptor limit)")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_option("--shutdown-grace", o.shutdown_grace_s, "seconds in-flight requests may finish after SIGTERM")
      ->capture_default_str();
  app.add_option("--asr-model", o.asr_model_dir,
                 "Whisper checkpoint directory (Hugging Face layout) for speech in: /v1/audio/transcriptions, "
                 "/v1/audio/translations and input_audio parts of chat messages (transcribed into the prompt)");
  app.add_option("--asr-device", o.asr_device, "where the speech model runs: cpu or cuda:N (default: --device)");
  quant.add_to(app);
  app.add_flag("!--no-prefix-caching", o.engine.enable_prefix_caching, "disable prefix caching");
  app.add_option("--log-level", log_level, "debug, info, warn, error")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  autoglm::log_init(log_level.c_str());
  try {
    o.engine.kv_cache_dtype = autoglm::parse_kv_cache_type(kv_type);
  } catch (const std::exception&) {
    std::fprintf(stderr, "autoglm serve: --kv-type must be f32, f16, bf16 or q8_0, got '%s'\n", kv_type.c_str());
    return 2;
  }
  try {
    quant.apply(o.engine);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "autoglm serve: %s\n", e.what());
    return 2;
  }
  if (o.min_pixels > 0 && o.max_pixels > 0 && o.min_pixels > o.max_pixels) {
    std::fprintf(stderr, "autoglm serve: --min-pixels (%lld) must not exceed --max-pixels (%lld)\n",
                 (long long)o.min_pixels, (long long)o.max_pixels);
    return 2;
  }
  o.port = uint16_t(port);
  o.max_body_bytes = max_body;
  std::error_code ec;
  o.demo_model = std::filesystem::equivalent(o.engine.model_dir, AUTOGLM_DEFAULT_MODEL_DIR, ec);
  if (!std::filesystem::is_directory(o.engine.model_dir)) {
    std::fprintf(stderr, "autoglm serve: model directory '%s' does not exist (pass -m DIR: the Hugging Face "
                 "directory of zai-org/AutoGLM-Phone-9B)\n", o.engine.model_dir.c_str());
    return 1;
  }
  if (!o.asr_model_dir.empty() && !std::filesystem::is_directory(o.asr_model_dir)) {
    std::fprintf(stderr, "autoglm serve: --asr-model directory '%s' does not exist (pass a Whisper checkpoint in the "
                 "Hugging Face layout, e.g. a download of openai/whisper-small)\n", o.asr_model_dir.c_str());
    return 1;
  }
  return autoglm::server::run_server(o);
}

}  // namespace

AUTOGLM_COMMAND("serve", "OpenAI-compatible HTTP server (chat/completions, completions, models, metrics)", cmd_serve);
