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
  size_t max_body_bytes = 64u << 20;   // 413 above
  int32_t timeout_s = 600;             // read/write timeout of one request / response piece
  int32_t shutdown_grace_s = 30;       // SIGTERM: let in-flight requests finish this long, then cancel them
  int64_t max_image_bytes = 20 << 20;  // one decoded-from-base64 image file
  int32_t max_images = 0;              // per request, 0 = no limit
  engine_options engine;               // model_dir, threads, max_num_seqs, max_model_len, max_waiting, pixels
  bool demo_model = false;             // serving the bundled random-weight demo: say so at start
};

// Opens the port at once, loads the model on a background thread (/health answers 503 until it is ready),
// serves until SIGINT/SIGTERM, then drains within the grace period. Returns the process exit code.
int run_server(const server_options& options);

}  // namespace autoglm::server
