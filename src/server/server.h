// server/server.h: `autoglm serve` — options and the blocking entry point.
#pragma once

#include <cstdint>
#include <string>

#include "autoglm/engine.h"

namespace autoglm::server {

struct server_options {
  std::string served_model_name = "autoglm-phone-9b";
  std::string host = "0.0.0.0";
  uint16_t port = 8000;
  std::string api_key;                 // empty: no auth
  std::string cors_origin;             // empty: no CORS headers
  int32_t n_http_threads = 0;          // 0: min(4, hardware threads), at least 2
  // 413 above. 32 MiB: one image file at the 20 MB max_image_bytes is 26.7 MiB as base64, leaving ~5 MiB for
  // text and history; an agent step with a few typical 1-3 MB screenshots needs under 16 MiB.
  size_t max_body_bytes = 32u << 20;
  int32_t header_timeout_s = 30;       // a request's first byte to the end of its header (slowloris)
  int32_t body_timeout_s = 60;         // longest pause while a request body arrives
  int32_t keepalive_timeout_s = 30;    // an idle connection between requests is closed after this
  int32_t write_timeout_s = 60;        // longest stall while a client does not read its response
  size_t max_queued_bytes = 8u << 20;  // response bytes waiting for one client; beyond, it is treated as gone
  int32_t max_connections = 0;         // 0: from the file-descriptor limit (RLIMIT_NOFILE), at most 4096
  int32_t shutdown_grace_s = 30;       // SIGTERM: let in-flight requests finish this long, then cancel them
  int64_t max_image_bytes = 20 << 20;  // one decoded-from-base64 image file
  int32_t max_images = 0;              // per request, 0 = no limit
  engine_options engine;               // model_dir, threads, max_num_seqs, max_model_len, max_waiting, KV
  int64_t min_pixels = 0, max_pixels = 0;  // image resize bounds (chat layer); 0: preprocessor_config.json
  bool demo_model = false;             // serving the bundled random-weight demo: say so at start
  // Speech in: a Whisper checkpoint (Hugging Face layout) for /v1/audio/transcriptions, /v1/audio/translations
  // and chat input_audio parts; empty: no speech model (those requests get a 400 naming --asr-model).
  std::string asr_model_dir;
  std::string asr_device;              // empty: engine.device
};

// Opens the port at once, loads the model on a background thread (/health answers 503 until it is ready),
// serves until SIGINT/SIGTERM, then drains within the grace period. Returns the process exit code.
int run_server(const server_options& options);

}  // namespace autoglm::server
